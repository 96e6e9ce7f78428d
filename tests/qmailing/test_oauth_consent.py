"""The consent page's choices, over the real OAuth flow (live server, dynamic registration, PKCE S256, `resource`).

The person ticks scopes (presets tick them in one click, also without JavaScript) and picks all mailboxes or
some; the token carries exactly what was ticked, and nothing the app did not ask for can be ticked in.
"""

import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import RequestFactory
from oauth2_provider.models import AccessToken, Grant

from accounts.scopes import ACTS_IN_THE_WORLD, PRESETS, SCOPES
from agent.consent import MAILBOX_CREDENTIAL, STALE_PAGE, ConsentForm, ConsentView
from tests.conftest import make_user
from tests.qmailing.test_permission_matrix import other_mailbox
from tests.qmailing.test_oauth_flow import REDIRECT_URI, _form_fields, _pkce, _register, _sign_in, _token

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

ALL = " ".join(SCOPES)
RESOURCE_PATH = "/api/v1/pub"


@pytest.fixture
def base(live_server):
    return live_server.url


@pytest.fixture
def person(transactional_db):
    return make_user("consenting@example.org")


class Consent:
    """One authorization request, signed in, at its consent page."""

    def __init__(self, base, person, scope=ALL, client_id=None, **extra):
        self.base = base
        self.client_id = client_id or _register(base).json()["client_id"]
        self.verifier, challenge = _pkce()
        self.state = secrets.token_urlsafe(16)
        self.session = requests.Session()
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT_URI,
                  "scope": scope, "state": self.state, "code_challenge": challenge,
                  "code_challenge_method": "S256", "resource": base + RESOURCE_PATH, **extra}
        response = self.session.get(f"{base}/oauth/authorize/", params=params, allow_redirects=False, timeout=10)
        back = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
        assert _sign_in(self.session, base, back, person.email) == back
        self.url = f"{base}{back}"  # the page's form has no action: a browser posts it back to this URL
        page = self.session.get(self.url, timeout=10)
        assert page.status_code == 200, page.text[:1000]
        self.page = page.text

    def post(self, **changes):
        """Submit the page as shown, with `changes` to its fields (None drops a field)."""
        form = {**_form_fields(self.page), **changes}
        form = {name: value for name, value in form.items() if value is not None}
        return self.session.post(self.url, data=form, allow_redirects=False, timeout=10)

    def exchange(self, answer):
        """The token response for an Allow that redirected back with a code."""
        assert answer.status_code == 302, answer.text[:2000]
        query = {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
        assert query["state"] == self.state and "code" in query, query
        response = _token(self.base, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                          client_id=self.client_id, code_verifier=self.verifier, resource=self.base + RESOURCE_PATH)
        assert response.status_code == 200, response.text
        return response.json()


def ticked(page, name="granted"):
    """The values of the ticked checkboxes named `name` in `page`."""
    return [html.unescape(re.search(r'value="([^"]*)"', tag).group(1))
            for tag in re.findall(r"<input[^>]*>", page)
            if f'name="{name}"' in tag and re.search(r"\schecked\b", tag)]


def offered(page, name="granted"):
    return [html.unescape(re.search(r'value="([^"]*)"', tag).group(1))
            for tag in re.findall(r"<input[^>]*>", page) if f'name="{name}"' in tag]


def test_the_page_lists_each_requested_scope_and_marks_those_that_act_in_the_world(base, person):
    consent = Consent(base, person)
    assert offered(consent.page) == list(SCOPES)
    for scope, words in SCOPES.items():
        assert html.escape(words) in consent.page
    for scope, why in ACTS_IN_THE_WORLD.items():
        assert html.escape(why) in consent.page
        tag = re.search(rf'<input[^>]*value="{re.escape(scope)}"[^>]*>', consent.page).group(0)
        assert "aria-describedby" in tag  # the warning is read out with the checkbox
    # Sending, domains and webhooks start unticked; the rest of what was asked for starts ticked.
    assert ticked(consent.page) == [scope for scope in SCOPES if scope not in ACTS_IN_THE_WORLD]
    assert [label for label, _ in PRESETS.values()] == ["Read only", "Drafts only (a person sends)", "Everything"]
    for label, _ in PRESETS.values():
        assert html.escape(label) in consent.page


def test_an_unticked_scope_is_absent_from_the_token(base, person):
    consent = Consent(base, person)
    tokens = consent.exchange(consent.post(granted=["mailbox:read", "email:read", "email:write"], allow="Allow"))
    assert set(tokens["scope"].split()) == {"mailbox:read", "email:read", "email:write"}
    row = AccessToken.objects.get(application__client_id=consent.client_id, user=person)
    assert set(row.scope.split()) == {"mailbox:read", "email:read", "email:write"}
    # It works for what was ticked, and the unticked email:send is refused at the API.
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{base}/api/v1/pub/mailboxes", headers=headers, timeout=10).status_code == 200
    mailbox = person.account.mailboxes.get()
    refused = requests.post(f"{base}/api/v1/pub/mailboxes/{mailbox.pk}/send", headers=headers, timeout=10,
                            json={"to": ["ada@example.com"], "subject": "Hi", "text": "Hello"})
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def test_presets_tick_their_scopes_among_those_requested_without_javascript(base, person):
    consent = Consent(base, person)
    for key, (_, scopes) in PRESETS.items():
        page = consent.post(preset=key)
        assert page.status_code == 200 and not AccessToken.objects.filter(user=person).exists()  # nothing granted
        assert ticked(page.text) == [scope for scope in SCOPES if scope in scopes], key
    # The page that came back is a working consent page: Allow grants the preset.
    consent.page = consent.post(preset="drafts").text
    tokens = consent.exchange(consent.post(allow="Allow"))
    assert set(tokens["scope"].split()) == {"mailbox:read", "domain:read", "email:read", "email:write"}
    assert "email:send" not in tokens["scope"].split()

    # A preset never ticks what the app did not ask for.
    narrow = Consent(base, person, scope="email:read email:send")
    assert ticked(narrow.post(preset="everything").text) == ["email:read", "email:send"]
    assert ticked(narrow.post(preset="read").text) == ["email:read"]
    assert ticked(narrow.post(preset="drafts").text) == ["email:read"]
    # With JavaScript the buttons tick in place: each carries the scopes it ticks.
    assert 'data-scopes="email:read email:send"' in narrow.page and 'data-scopes="email:read"' in narrow.page


def test_a_scope_the_app_did_not_ask_for_cannot_be_ticked_in(base, person):
    consent = Consent(base, person, scope="mailbox:read email:read")
    refused = consent.post(granted=["mailbox:read", "email:send"], allow="Allow")
    assert refused.status_code == 400
    assert "email:send: this app did not ask for it" in html.unescape(refused.text)
    # Changing the requested scopes the page carries is refused too.
    tampered = consent.post(scope="mailbox:read email:read email:send", granted=["email:send"], allow="Allow")
    assert tampered.status_code == 400 and STALE_PAGE in html.unescape(tampered.text)
    assert not Grant.objects.filter(user=person).exists() and not AccessToken.objects.filter(user=person).exists()
    # The untouched page still works.
    tokens = consent.exchange(consent.post(allow="Allow"))
    assert set(tokens["scope"].split()) == {"mailbox:read", "email:read"}


def test_allow_with_nothing_ticked_asks_again_and_deny_needs_nothing(base, person):
    consent = Consent(base, person, scope="email:send")
    assert ticked(consent.page) == []  # sending starts unticked, even when it is all that was asked
    again = consent.post(allow="Allow")
    assert again.status_code == 400 and "Tick at least one permission, or choose Deny." in again.text
    assert not Grant.objects.filter(user=person).exists()
    denied = consent.post()
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["Location"]).query)["error"] == ["access_denied"]


def test_the_mailbox_choice_is_checked_against_the_account(base, person):
    outsider_mailbox = make_user("someone-else@example.net").account.mailboxes.get()
    own = person.account.mailboxes.get()
    consent = Consent(base, person)
    assert offered(consent.page, "mailbox_ids") == [str(own.pk)] and html.escape(own.address) in consent.page
    assert ticked(consent.page, "mailboxes") == ["all"]

    tampered = consent.post(mailboxes="some", mailbox_ids=[str(outsider_mailbox.pk)], allow="Allow")
    assert tampered.status_code == 400 and "is not one of your account's" in html.unescape(tampered.text)
    assert "Tick at least one mailbox" not in tampered.text  # one error, the right one
    none_ticked = consent.post(mailboxes="some", allow="Allow")
    assert none_ticked.status_code == 400 and "Tick at least one mailbox" in none_ticked.text
    ambiguous = consent.post(mailboxes="all", mailbox_ids=[str(own.pk)], allow="Allow")
    assert ambiguous.status_code == 400 and "You ticked mailboxes" in html.unescape(ambiguous.text)
    assert not Grant.objects.filter(user=person).exists()

    # The refused page keeps the person's choice.
    assert ticked(tampered.text, "mailboxes") == ["some"]

    limited = consent.post(mailboxes="some", mailbox_ids=[str(own.pk)], allow="Allow")
    assert limited.status_code == 302 and "code=" in limited.headers["Location"]


def test_an_earlier_grant_never_skips_the_page(base, person):
    first = Consent(base, person, scope="mailbox:read")
    first.exchange(first.post(allow="Allow"))
    # DOT's approval_prompt=auto would answer with a code at once, on the earlier token's scopes and without
    # the choice of mailboxes: the page is shown instead.
    again = Consent(base, person, scope="mailbox:read", client_id=first.client_id, approval_prompt="auto")
    assert offered(again.page) == ["mailbox:read"]


def _bound_form(user, scope, **data):
    """The consent form as the page made it for `user`, submitted with `data`."""
    shown = ConsentForm(user=user, initial={"client_id": "client-1", "redirect_uri": REDIRECT_URI, "scope": scope,
                                            "response_type": "code", "state": "s"})
    fields = {name: shown.initial.get(name) for name in ("client_id", "redirect_uri", "scope", "response_type",
                                                          "state", "signature")}
    return ConsentForm(user=user, data={**fields, **data})


def test_the_mailbox_choice_reaches_the_grant_as_an_oauthlib_credential(person):
    own = person.account.mailboxes.get()
    some = _bound_form(person, "mailbox:read email:read", allow="on", granted=["email:read"], mailboxes="some",
                       mailbox_ids=[str(own.pk)])
    assert some.is_valid(), some.errors
    assert some.cleaned_data["scope"] == "email:read" and some.cleaned_data["mailbox_limit"] == [str(own.pk)]
    every = _bound_form(person, "mailbox:read email:read", allow="on", granted=["email:read"], mailboxes="all")
    assert every.is_valid(), every.errors
    assert every.cleaned_data["mailbox_limit"] is None

    view = ConsentView()
    view.setup(RequestFactory().post("/oauth/authorize/"))
    dot_credentials = {"client_id": "client-1", "redirect_uri": REDIRECT_URI, "state": "s"}
    view.mailbox_limit = some.cleaned_data["mailbox_limit"]
    assert view.consent_credentials(dot_credentials) == {**dot_credentials, MAILBOX_CREDENTIAL: [str(own.pk)]}
    view.mailbox_limit = every.cleaned_data["mailbox_limit"]
    assert MAILBOX_CREDENTIAL not in view.consent_credentials(dot_credentials)  # all mailboxes: no limit at all


def test_the_page_s_choices_are_exactly_what_the_token_and_its_refreshes_carry(base, person):
    """End to end: tick two of the requested scopes and one of two mailboxes; the token (and the one a refresh
    rotates in) reads only that mailbox, and a call needing an unticked scope is refused."""
    chosen, other = person.account.mailboxes.get(), other_mailbox(person.account)
    consent = Consent(base, person, scope="mailbox:read email:read email:write")
    answer = consent.post(granted=["mailbox:read", "email:read"], mailboxes="some", mailbox_ids=[str(chosen.pk)],
                          allow="Allow")
    tokens = consent.exchange(answer)
    assert set(tokens["scope"].split()) == {"mailbox:read", "email:read"}
    for _ in range(2):  # the code's token, then a rotation
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        seen = requests.get(f"{base}/api/v1/pub/mailboxes", headers=headers, timeout=10).json()["items"]
        assert [item["id"] for item in seen] == [str(chosen.pk)]
        assert requests.get(f"{base}/api/v1/pub/mailboxes/{other.pk}", headers=headers,
                            timeout=10).json()["code"] == "not_found"
        draft = requests.post(f"{base}/api/v1/pub/mailboxes/{chosen.pk}/drafts", headers=headers,
                              json={"subject": "x"}, timeout=10)
        assert (draft.status_code, draft.json()["code"]) == (403, "insufficient_scope")
        refreshed = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                           client_id=consent.client_id)
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()


def test_an_app_cannot_pass_a_mailbox_choice_in_its_authorize_url(base, person):
    """oauthlib answers getattr with the request's query parameters; the validator reads only what the consent
    view set, so an app's `qmailing_mailbox_ids` parameter neither limits nor breaks the person's choice."""
    other = other_mailbox(person.account)
    every = {str(mailbox.pk) for mailbox in person.account.mailboxes.all()}
    consent = Consent(base, person, scope="mailbox:read", qmailing_mailbox_ids="x")
    tokens = consent.exchange(consent.post(allow="Allow"))
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    seen = requests.get(f"{base}/api/v1/pub/mailboxes", headers=headers, timeout=10).json()["items"]
    assert {item["id"] for item in seen} == every and str(other.pk) in every
