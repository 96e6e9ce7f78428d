import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import Env


def test_strict_booleans():
    env = Env({"A": "true", "B": "0", "C": "maybe", "D": ""})
    assert env.bool("A") is True and env.bool("B") is False and env.bool("D", True) is True
    with pytest.raises(ImproperlyConfigured, match="true or false"):
        env.bool("C")


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    env = Env({"KEY_FILE": str(secret), "KEY": "ignored"})
    assert env.str("KEY") == "s3cret"
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        Env({"KEY_FILE": str(tmp_path / "missing")}).str("KEY")


def test_numbers_and_lists():
    env = Env({"N": "5", "F": "0.5", "L": " a, b ,,c ", "BAD": "x"})
    assert env.int("N") == 5 and env.float("F") == 0.5 and env.list("L") == ["a", "b", "c"]
    assert env.int("MISSING", 7) == 7 and env.list("MISSING", ["z"]) == ["z"]
    with pytest.raises(ImproperlyConfigured, match="integer"):
        env.int("BAD")


def test_local_secret_is_made_once_private_and_shared(tmp_path):
    import stat

    from core.env import local_secret

    path = tmp_path / "var" / "secret_key"
    first = local_secret(path)
    assert len(first) >= 50 and local_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        local_secret(path)
