"""Authorization codes are single-use, over real HTTP against a running server (agent.oauth_validator).

A replayed code is refused and revokes every token issued from it, rotated ones included; a failed PKCE check
spends the code; two exchanges of one code cannot both keep their tokens, and the loser of a race gets
invalid_grant, never a 500; used codes are forgotten after a day.
"""

import hashlib
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from agent.models import UsedAuthorizationCode
from tests.qmailing.test_oauth_flow import (  # noqa: F401 (base and person are fixtures)
    REDIRECT_URI, _api, _authorize, _register, _token, base, person,
)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


def _code(base, person):
    """A fresh authorization code for a newly registered client: (client_id, code, verifier, resource)."""
    client_id = _register(base).json()["client_id"]
    resource = f"{base}/api/v1/pub"
    query, verifier, _ = _authorize(requests.Session(), base, client_id, resource=resource, email=person.email)
    return client_id, query["code"], verifier, resource


def _exchange(base, client_id, code, verifier, resource):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": client_id,
            "resource": resource}
    if verifier is not None:
        data["code_verifier"] = verifier
    return _token(base, **data)


def _refresh(base, client_id, refresh_token):
    return _token(base, grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id)


def _assert_invalid_grant(response):
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def test_a_replayed_code_revokes_the_tokens_it_bought(base, person):
    client_id, code, verifier, resource = _code(base, person)
    issued = _exchange(base, client_id, code, verifier, resource)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert _api(base, tokens["access_token"]).status_code == 200

    _assert_invalid_grant(_exchange(base, client_id, code, verifier, resource))

    assert _api(base, tokens["access_token"]).status_code == 401
    _assert_invalid_grant(_refresh(base, client_id, tokens["refresh_token"]))


def test_a_replayed_code_revokes_tokens_rotated_since(base, person):
    client_id, code, verifier, resource = _code(base, person)
    first = _exchange(base, client_id, code, verifier, resource).json()
    rotated = _refresh(base, client_id, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    again = _refresh(base, client_id, second["refresh_token"])
    assert again.status_code == 200, again.text
    third = again.json()
    assert _api(base, third["access_token"]).status_code == 200

    _assert_invalid_grant(_exchange(base, client_id, code, verifier, resource))

    assert _api(base, third["access_token"]).status_code == 401
    _assert_invalid_grant(_refresh(base, client_id, third["refresh_token"]))


def test_a_replay_leaves_other_codes_tokens_alone(base, person):
    client_id, code, verifier, resource = _code(base, person)
    _exchange(base, client_id, code, verifier, resource)
    other_client, other_code, other_verifier, _ = _code(base, person)
    other = _exchange(base, other_client, other_code, other_verifier, resource).json()

    _assert_invalid_grant(_exchange(base, client_id, code, verifier, resource))

    assert _api(base, other["access_token"]).status_code == 200


@pytest.mark.parametrize("wrong, error", [("a-wrong-verifier-" + "x" * 40, "invalid_grant"),
                                          (None, "invalid_request")])
def test_a_failed_pkce_check_spends_the_code(base, person, wrong, error):
    from oauth2_provider.models import AccessToken

    client_id, code, verifier, resource = _code(base, person)
    refused = _exchange(base, client_id, code, wrong, resource)
    assert refused.status_code == 400 and refused.json()["error"] == error, refused.text

    _assert_invalid_grant(_exchange(base, client_id, code, verifier, resource))
    assert not AccessToken.objects.filter(application__client_id=client_id, user=person).exists()


def test_of_two_exchanges_of_one_code_neither_keeps_its_tokens(base, person):
    """The race: a second exchange passed validation while the first was committing. Its insert of the used
    code conflicts, its own tokens are rolled back and the first exchange's tokens are revoked."""
    from oauth2_provider.models import AccessToken

    client_id, code, verifier, resource = _code(base, person)
    winner = _exchange(base, client_id, code, verifier, resource).json()
    racing_client, racing_code, racing_verifier, _ = _code(base, person)
    # The winner's exchange is recorded under the racing code too, as if both had presented that one code.
    record = UsedAuthorizationCode.objects.get()
    UsedAuthorizationCode.objects.create(code_checksum=hashlib.sha256(racing_code.encode()).hexdigest(),
                                         token_family=record.token_family,
                                         access_token_checksum=record.access_token_checksum)

    _assert_invalid_grant(_exchange(base, racing_client, racing_code, racing_verifier, resource))

    assert not AccessToken.objects.filter(application__client_id=racing_client, user=person).exists()
    assert _api(base, winner["access_token"]).status_code == 401
    _assert_invalid_grant(_refresh(base, client_id, winner["refresh_token"]))


def test_an_exchange_whose_tokens_a_racing_replay_revoked_gets_invalid_grant(base, person, monkeypatch):
    """The replay lands after the exchange committed its tokens, before DOT's view read them back."""
    from agent import oauth_validator

    def invalidate_then_replay(self, client_id, code, request, *args, **kwargs):
        original(self, client_id, code, request, *args, **kwargs)
        oauth_validator._revoke_issued_from(code)

    original = oauth_validator.SingleUseCodeValidator.invalidate_authorization_code
    monkeypatch.setattr(oauth_validator.SingleUseCodeValidator, "invalidate_authorization_code",
                        invalidate_then_replay)
    client_id, code, verifier, resource = _code(base, person)

    _assert_invalid_grant(_exchange(base, client_id, code, verifier, resource))


def test_used_codes_are_forgotten_by_the_daily_purge():
    from agent.tasks import oauth_purge_stale_registrations_task

    old = UsedAuthorizationCode.objects.create(code_checksum="a" * 64, used_at=timezone.now() - timedelta(days=2))
    recent = UsedAuthorizationCode.objects.create(code_checksum="b" * 64)
    oauth_purge_stale_registrations_task.apply().get()
    remaining = set(UsedAuthorizationCode.objects.values_list("pk", flat=True))
    assert old.pk not in remaining and recent.pk in remaining
