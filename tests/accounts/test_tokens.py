import hashlib
import math
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.settings import oauth2_settings

from accounts import tokens
from accounts.scopes import SCOPES
from accounts.tokens import token_format_ok, token_issue, token_list, token_lookup, token_revoke
from core.errors import Invalid, NotFound
from tests.conftest import make_user


@pytest.fixture
def user(db):
    return make_user("tokens@example.org")


def test_token_format_has_prefix_160_random_bits_and_a_checksum():
    token = tokens.access_token_generator()
    assert token.startswith("qm_live_") and token_format_ok(token)
    assert tokens.RANDOM_LENGTH * math.log2(62) >= 160
    assert len(token) == len("qm_live_") + tokens.RANDOM_LENGTH + tokens.CHECKSUM_LENGTH
    assert len({tokens.access_token_generator() for _ in range(200)}) == 200


def test_checksum_catches_a_changed_character_offline():
    token = tokens.access_token_generator()
    position = len("qm_live_") + 5
    changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]
    assert not token_format_ok(changed)
    for bad in ("", "qm_live_", token[:-1], token + "0", token.replace("qm_live_", "qm_test_"), "Bearer " + token,
                token[:-6] + "!!!!!!", None, 42):
        assert not token_format_ok(bad)


def test_refresh_tokens_have_their_own_prefix():
    refresh = tokens.refresh_token_generator()
    assert refresh.startswith("qm_refresh_") and not token_format_ok(refresh)
    assert token_format_ok(refresh, prefix="qm_refresh_")


def test_oauth_issued_tokens_use_the_same_generator_and_scopes():
    kwargs = oauth2_settings.server_kwargs
    assert kwargs["token_generator"] is tokens.access_token_generator
    assert kwargs["refresh_token_generator"] is tokens.refresh_token_generator
    assert oauth2_settings.SCOPES_BACKEND_CLASS().get_all_scopes() == SCOPES
    assert oauth2_settings.COMPLIANT_BCP_RFC9700_TOKEN_STORAGE and oauth2_settings.COMPLIANT_BCP_RFC9700_PKCE_METHOD
    assert oauth2_settings.PKCE_REQUIRED and oauth2_settings.ROTATE_REFRESH_TOKEN


def _every_stored_value():
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("latin-1")
                    if value is not None:
                        yield table, str(value)


def test_plaintext_appears_nowhere_in_the_database(user):
    plaintext, access_token = token_issue(account=user.account, user=user, client="Claude Desktop",
                                          scopes="mailbox:read email:read")
    random_part = plaintext[len("qm_live_"):-tokens.CHECKSUM_LENGTH]
    hits = [(table, value[:80]) for table, value in _every_stored_value() if random_part in value]
    assert hits == []
    stored = AccessToken.objects.get(pk=access_token.pk)
    assert stored.token == ""
    assert stored.token_checksum == hashlib.sha256(plaintext.encode()).hexdigest()
    assert token_lookup(plaintext).pk == access_token.pk


def test_issue_binds_scopes_client_account_and_a_long_expiry(user):
    plaintext, access_token = token_issue(account=user.account, user=user, client="  Cursor ", scopes=["email:read", "mailbox:read", "email:read"])
    assert access_token.scope == "email:read mailbox:read"
    assert access_token.application.name == "Cursor" and access_token.user == user
    assert (access_token.expires - access_token.created).days >= 364
    # One Application per (account, client): a second token for Cursor reuses it, another client gets its own.
    _, second = token_issue(account=user.account, user=user, client="Cursor", scopes="mailbox:read")
    _, third = token_issue(account=user.account, user=user, client="Continue", scopes="mailbox:read")
    assert second.application_id == access_token.application_id != third.application_id
    assert Application.objects.filter(user__account=user.account).count() == 2


@pytest.mark.parametrize("scopes", ["", "mailbox:read admin", ["root"]])
def test_issue_refuses_unknown_or_no_scopes(user, scopes):
    with pytest.raises(Invalid) as caught:
        token_issue(account=user.account, user=user, client="Cursor", scopes=scopes)
    assert "scopes" in caught.value.errors


def test_issue_refuses_a_user_of_another_account(user):
    other = make_user("other@example.net")
    with pytest.raises(NotFound):
        token_issue(account=user.account, user=other, client="Cursor", scopes="mailbox:read")


def test_list_and_revoke_stay_inside_the_account(user):
    other = make_user("other@example.net")
    plaintext, access_token = token_issue(account=user.account, user=user, client="Cursor", scopes="mailbox:read")
    token_issue(account=other.account, user=other, client="Cursor", scopes="mailbox:read")
    assert [t.pk for t in token_list(account=user.account)] == [access_token.pk]
    with pytest.raises(NotFound):
        token_revoke(account=other.account, token_id=access_token.pk)
    with pytest.raises(NotFound):
        token_revoke(account=user.account, token_id="not-an-id")
    token_revoke(account=user.account, token_id=access_token.pk)
    assert token_lookup(plaintext) is None and list(token_list(account=user.account)) == []


def test_issue_token_command_prints_the_token_once(user):
    out, err = StringIO(), StringIO()
    call_command("issue_token", user.email, "--client", "Claude Desktop", "--scopes", "mailbox:read domain:read",
                 stdout=out, stderr=err)
    printed = out.getvalue().strip()
    assert token_format_ok(printed) and printed not in err.getvalue()
    assert token_lookup(printed).scope == "domain:read mailbox:read"
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("issue_token", user.email, "--client", "X", "--scopes", "everything", stdout=StringIO())
    with pytest.raises(CommandError, match="No account"):
        call_command("issue_token", "nobody@example.org", "--client", "X", "--scopes", "mailbox:read", stdout=StringIO())
