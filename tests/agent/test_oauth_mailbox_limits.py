"""An OAuth grant limited to chosen mailboxes, through the real endpoints: DCR, PKCE, consent, code, refresh.

The consent page passes the person's choice to DOT as the credential `qmailing_mailbox_ids`
(agent.oauth_validator.MAILBOX_IDS_CREDENTIAL). Here the consent view's create_authorization_response is
wrapped to add it, as the page's mailbox field does; the rest of the flow is the one a client runs.
"""

import pytest
import requests
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from accounts.oauth_apps import oauth_app_list
from agent.consent import ConsentView
from agent.oauth_validator import MAILBOX_IDS_CREDENTIAL, SingleUseCodeValidator
from mailboxes.token_limits import oauth_limits_purge
from tests.conftest import make_user
from tests.qmailing.test_oauth_flow import REDIRECT_URI, _authorize, _register, _token
from tests.qmailing.test_permission_matrix import other_mailbox

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


@pytest.fixture
def base(live_server):
    return live_server.url


@pytest.fixture
def person(transactional_db):
    return make_user("agent-owner@example.org")


def _choosing(monkeypatch, mailbox_ids):
    """The consent page's mailbox choice: every authorization from here on passes `mailbox_ids` to DOT."""
    original = ConsentView.create_authorization_response

    def create_authorization_response(self, request, scopes, credentials, allow):
        return original(self, request=request, scopes=scopes,
                        credentials={**credentials, MAILBOX_IDS_CREDENTIAL: [str(pk) for pk in mailbox_ids]},
                        allow=allow)

    monkeypatch.setattr(ConsentView, "create_authorization_response", create_authorization_response)


def _mailbox_ids_seen(base, token):
    response = requests.get(f"{base}/api/v1/pub/mailboxes", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def _get(base, token, path):
    return requests.get(f"{base}/api/v1/pub/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_chosen_mailboxes_limit_the_token_and_every_refresh_of_it(base, person, monkeypatch):
    chosen, other = person.account.mailboxes.get(), other_mailbox(person.account)
    _choosing(monkeypatch, [chosen.pk])
    client_id = _register(base).json()["client_id"]
    resource = f"{base}/api/v1/pub"
    query, verifier, _ = _authorize(requests.Session(), base, client_id, resource=resource, email=person.email,
                                    scope="mailbox:read email:read domain:read")
    issued = _token(base, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                    client_id=client_id, code_verifier=verifier, resource=resource)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert _mailbox_ids_seen(base, tokens["access_token"]) == {str(chosen.pk)}
    assert _get(base, tokens["access_token"], f"mailboxes/{other.pk}").json()["code"] == "not_found"
    assert _get(base, tokens["access_token"], "domains").json()["code"] == "token_limited_to_mailboxes"

    # Each rotation issues a token exactly as limited, twice over (the family keeps the choice).
    for _ in range(2):
        refreshed = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                           client_id=client_id)
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()
        assert _mailbox_ids_seen(base, tokens["access_token"]) == {str(chosen.pk)}
        assert _get(base, tokens["access_token"], f"mailboxes/{other.pk}").status_code == 404
    # Settings → Developers shows the app's limit.
    [app] = oauth_app_list(account=person.account)
    assert (app.mailbox_addresses, app.mailboxes_known) == ([chosen.address], True)
    assert oauth_limits_purge() == 0  # the family lives on: its limit stays for the next refresh


def test_without_a_choice_the_token_reaches_every_mailbox(base, person):
    other_mailbox(person.account)
    every = {str(mailbox.pk) for mailbox in person.account.mailboxes.all()}
    assert len(every) == 2
    client_id = _register(base).json()["client_id"]
    resource = f"{base}/api/v1/pub"
    query, verifier, _ = _authorize(requests.Session(), base, client_id, resource=resource, email=person.email)
    tokens = _token(base, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                    client_id=client_id, code_verifier=verifier, resource=resource).json()
    assert _mailbox_ids_seen(base, tokens["access_token"]) == every
    refreshed = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=client_id)
    assert _mailbox_ids_seen(base, refreshed.json()["access_token"]) == every
    [app] = oauth_app_list(account=person.account)
    assert app.mailbox_addresses is None


def test_another_accounts_mailbox_refuses_the_authorization(base, person, monkeypatch):
    from oauth2_provider.models import Grant

    stranger = make_user("stranger@example.net").account.mailboxes.get()
    _choosing(monkeypatch, [person.account.mailboxes.get().pk, stranger.pk])
    client_id = _register(base).json()["client_id"]
    query, _, _ = _authorize(requests.Session(), base, client_id, resource=f"{base}/api/v1/pub", email=person.email)
    assert query["error"] == "access_denied" and "code" not in query
    assert not Grant.objects.exists()


def test_the_validator_keeps_the_choice_with_the_code_and_refuses_a_malformed_id(person):
    from oauth2_provider.models import Application, Grant

    application = Application.objects.create(
        name="Direct", client_type=Application.CLIENT_PUBLIC, redirect_uris=REDIRECT_URI,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE)
    mailbox = person.account.mailboxes.get()

    def request(mailbox_ids):
        oauth_request = Request(REDIRECT_URI)
        oauth_request.user, oauth_request.client = person, application
        oauth_request.redirect_uri, oauth_request.scopes = REDIRECT_URI, ["mailbox:read"]
        oauth_request.code_challenge, oauth_request.code_challenge_method = "x" * 43, "S256"
        setattr(oauth_request, MAILBOX_IDS_CREDENTIAL, mailbox_ids)
        return oauth_request

    validator = SingleUseCodeValidator()
    validator.save_authorization_code(application.client_id, {"code": "chosen"}, request([str(mailbox.pk)]))
    grant = Grant.objects.get(code="chosen")
    assert list(grant.mailbox_limit.mailboxes.all()) == [mailbox]
    for refused in (["not-a-uuid"], []):
        with pytest.raises(errors.AccessDeniedError):
            validator.save_authorization_code(application.client_id, {"code": f"refused{len(refused)}"},
                                              request(refused))
    assert list(Grant.objects.values_list("code", flat=True)) == ["chosen"]
    validator.save_authorization_code(application.client_id, {"code": "all"}, request(None))
    assert Grant.objects.filter(code="all", mailbox_limit__isnull=True).exists()
    # A code that is never exchanged leaves a limit nothing can use: the daily purge forgets it.
    assert oauth_limits_purge() == 0
    Grant.objects.filter(code="chosen").delete()
    assert oauth_limits_purge() == 1
