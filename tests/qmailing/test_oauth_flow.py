"""The OAuth 2.1 flow end to end over real HTTP against a running server (pytest-django's live_server).

Discovery from a 401 → RFC 9728 protected-resource metadata → RFC 8414 authorization-server metadata →
dynamic registration → sign-in and consent → authorization code with PKCE S256 and `resource` → token →
an API call → refresh (the old refresh token is refused after rotation). Plus the refusals: grants other
than authorization_code, non-https non-loopback redirect URIs, tokens for another audience, and the
per-IP registration limit.
"""

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from accounts.scopes import SCOPES
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

PASSWORD = "correct horse battery 9"
REDIRECT_URI = "http://127.0.0.1:53682/callback"
ALL_SCOPES = sorted(SCOPES)


@pytest.fixture
def base(live_server):
    return live_server.url


@pytest.fixture
def person(transactional_db):
    return make_user("agent-owner@example.org")


def _challenge_params(header):
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _register(base, **metadata):
    body = {"client_name": "Test Agent", "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none", **metadata}
    return requests.post(f"{base}/oauth/register/", json=body, timeout=10)


def _pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _form_fields(page):
    """What a browser submits of the page's form before a button is pressed: the hidden inputs and the ticked
    checkboxes and radio buttons (a name that repeats maps to the list of its values)."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]*)"', tag)
        kind = kind.group(1) if kind else "text"
        if not name or not (kind == "hidden" or (kind in ("checkbox", "radio") and re.search(r"\schecked\b", tag))):
            continue
        name, value = html.unescape(name.group(1)), html.unescape(value.group(1)) if value else ""
        if kind == "checkbox":
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields


def _sign_in(session, base, next_url, email):
    """The real sign-in page: GET it for the CSRF cookie, POST the password with `next`; lands back on `next`."""
    page = session.get(f"{base}/accounts/login/", params={"next": next_url}, timeout=10)
    assert page.status_code == 200
    form = _form_fields(page.text)
    response = session.post(f"{base}/accounts/login/", data={**form, "login": email, "password": PASSWORD,
                                                             "next": next_url}, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    return response.headers["Location"]


def _authorize(session, base, client_id, *, resource, scope="mailbox:read email:read", allow=True, email=None):
    """Authorization request with PKCE S256 and `resource`; signs in when sent to the sign-in page, then consents.

    Returns (redirect query parameters, code_verifier, consent page HTML).
    """
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": scope,
              "state": state, "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource}
    response = session.get(f"{base}/oauth/authorize/", params=params, allow_redirects=False, timeout=10)
    if response.status_code == 302:  # not signed in: our sign-in page, and back
        location = response.headers["Location"]
        assert urlsplit(location).path == "/accounts/login/"
        back = parse_qs(urlsplit(location).query)["next"][0]
        assert back.startswith("/oauth/authorize/")
        assert _sign_in(session, base, back, email) == back
        response = session.get(f"{base}{back}", allow_redirects=False, timeout=10)
    assert response.status_code == 200, response.text[:1000]
    page = response.text
    form = _form_fields(page)
    if allow:
        form["allow"] = "Allow"
    answer = session.post(f"{base}/oauth/authorize/", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:1000]
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == state
    return query, verifier, page


def _token(base, **data):
    return requests.post(f"{base}/oauth/token/", data=data, timeout=10)


def _flow(base, person, *, resource):
    """Register, authorize (signing in), exchange the code: the token response JSON."""
    client_id = _register(base).json()["client_id"]
    query, verifier, _ = _authorize(requests.Session(), base, client_id, resource=resource, email=person.email)
    response = _token(base, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                      client_id=client_id, code_verifier=verifier, resource=resource)
    assert response.status_code == 200, response.text
    return client_id, response.json()


def _api(base, token):
    return requests.get(f"{base}/api/v1/pub/mailboxes", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_whole_flow_from_a_401_to_a_refreshed_token(base, person):
    from oauth2_provider.models import AccessToken

    # 1. Discovery from a 401.
    refused = requests.get(f"{base}/api/v1/pub/mailboxes", timeout=10)
    assert refused.status_code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    params = _challenge_params(challenge)
    assert params["resource_metadata"] == f"{base}/.well-known/oauth-protected-resource/api/v1/pub"
    assert params["scope"].split() == ALL_SCOPES

    # 2. RFC 9728 protected-resource metadata.
    resource_meta = requests.get(params["resource_metadata"], timeout=10).json()
    assert resource_meta["resource"] == f"{base}/api/v1/pub"
    assert resource_meta["scopes_supported"] == ALL_SCOPES
    assert resource_meta["bearer_methods_supported"] == ["header"]
    (issuer,) = resource_meta["authorization_servers"]
    assert issuer == base

    # 3. RFC 8414 authorization-server metadata.
    server_meta = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10).json()
    assert server_meta["issuer"] == issuer
    assert server_meta["authorization_endpoint"] == f"{base}/oauth/authorize/"
    assert server_meta["token_endpoint"] == f"{base}/oauth/token/"
    assert server_meta["registration_endpoint"] == f"{base}/oauth/register/"
    assert server_meta["code_challenge_methods_supported"] == ["S256"]
    assert "none" in server_meta["token_endpoint_auth_methods_supported"]
    assert server_meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert server_meta["response_types_supported"] == ["code"]
    assert server_meta["scopes_supported"] == ALL_SCOPES

    # 4. Dynamic client registration: a public client.
    registered = requests.post(server_meta["registration_endpoint"], timeout=10, json={
        "client_name": "Test Agent", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]})
    assert registered.status_code == 201, registered.text
    client = registered.json()
    assert "client_secret" not in client and client["token_endpoint_auth_method"] == "none"

    # 5. Authorization with PKCE S256 and `resource`: sign in, then the consent page.
    resource = resource_meta["resource"]
    query, verifier, consent = _authorize(requests.Session(), base, client["client_id"], resource=resource,
                                          email=person.email)
    assert "Test Agent" in consent
    assert html.escape(SCOPES["mailbox:read"]) in consent and html.escape(SCOPES["email:read"]) in consent
    assert html.escape(SCOPES["email:send"]) not in consent  # only what was asked for
    assert query["iss"] == issuer  # RFC 9207

    # 6. Token: the code once, with the verifier.
    issued = _token(base, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT_URI,
                    client_id=client["client_id"], code_verifier=verifier, resource=resource)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert tokens["access_token"].startswith("qm_live_") and tokens["refresh_token"].startswith("qm_refresh_")
    assert set(tokens["scope"].split()) == {"mailbox:read", "email:read"}
    row = AccessToken.objects.get(application__client_id=client["client_id"], user=person)
    assert row.token == "" and row.resource == [resource]  # no plaintext at rest
    assert set(row.scope.split()) == {"mailbox:read", "email:read"}
    # A second use of the code is refused and revokes these tokens: tests/qmailing/test_oauth_codes.py.

    # 7. An API call with the access token.
    answer = _api(base, tokens["access_token"])
    assert answer.status_code == 200, answer.text
    assert "items" in answer.json()

    # 8. Refresh: a new pair; the old refresh token is refused after rotation.
    refreshed = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                       client_id=client["client_id"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    assert _api(base, new["access_token"]).status_code == 200
    assert _api(base, tokens["access_token"]).status_code == 401  # the rotated-out access token is gone
    reused = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                    client_id=client["client_id"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # Replaying a rotated refresh token revokes the whole family (REFRESH_TOKEN_REUSE_PROTECTION).
    assert _api(base, new["access_token"]).status_code == 401


def test_metadata_for_mcp_and_the_origin_lists_every_scope(base):
    for suffix, resource in (("/mcp", f"{base}/mcp"), ("", base), ("/api/v1/pub", f"{base}/api/v1/pub")):
        document = requests.get(f"{base}/.well-known/oauth-protected-resource{suffix}", timeout=10)
        assert document.status_code == 200
        assert document.json()["resource"] == resource
        assert document.json()["scopes_supported"] == ALL_SCOPES
        assert document.json()["authorization_servers"] == [base]
        assert document.json()["resource_documentation"].endswith("/docs/mcp")
    assert requests.get(f"{base}/.well-known/oauth-protected-resource/elsewhere", timeout=10).status_code == 404


def test_a_token_for_another_audience_is_refused_by_the_api(base, person):
    _, tokens = _flow(base, person, resource="https://elsewhere.example/mcp")
    refused = _api(base, tokens["access_token"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # The same person's token for our /mcp works on the REST twin (one resource server, two surfaces).
    _, ours = _flow(base, person, resource=f"{base}/mcp")
    assert _api(base, ours["access_token"]).status_code == 200


@pytest.mark.parametrize("metadata", [
    {"grant_types": ["client_credentials"]},
    {"grant_types": ["password"]},
    {"grant_types": ["implicit"], "response_types": ["token"]},
    {"grant_types": ["authorization_code", "client_credentials"]},
])
def test_registration_of_other_grants_is_refused(base, metadata):
    response = _register(base, **metadata)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("uri", [
    "http://example.com/callback", "http://10.0.0.1/cb", "ftp://example.com/cb", "myapp://callback",
    "https://claude.ai/api/mcp/auth_callback#frag", "https://user@evil.example/cb", "not a url",
])
def test_non_https_non_loopback_redirect_uris_are_refused(base, uri):
    response = _register(base, redirect_uris=[uri])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("uri", [
    "https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback",
    "http://127.0.0.1:6274/oauth/callback", "http://localhost:33418/callback", "http://[::1]:8080/cb",
])
def test_claude_and_loopback_redirect_uris_register(base, uri):
    response = _register(base, redirect_uris=[uri])
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


def test_registration_update_is_held_to_the_same_policy(base):
    client = _register(base).json()
    url, auth = client["registration_client_uri"], {"Authorization": f"Bearer {client['registration_access_token']}"}
    changed = requests.put(url, headers=auth, timeout=10, json={"redirect_uris": [REDIRECT_URI],
                                                                 "grant_types": ["client_credentials"]})
    assert changed.status_code == 400 and changed.json()["error"] == "invalid_client_metadata"
    assert requests.put(url, timeout=10, json={"grant_types": ["client_credentials"]}).status_code == 401
    # The registration access token is not an API token.
    assert _api(base, client["registration_access_token"]).status_code == 401


def test_registration_is_rate_limited_per_ip(base, settings):
    settings.QMAILING_DCR_REGISTRATIONS_PER_HOUR = 3
    assert [_register(base).status_code for _ in range(3)] == [201, 201, 201]
    limited = _register(base)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"] == "too_many_requests"


def test_deny_sends_access_denied_back_and_issues_nothing(base, person):
    from oauth2_provider.models import AccessToken, Grant

    client_id = _register(base).json()["client_id"]
    query, _, _ = _authorize(requests.Session(), base, client_id, resource=f"{base}/mcp", allow=False,
                             email=person.email)
    assert query["error"] == "access_denied" and "code" not in query
    assert not Grant.objects.filter(application__client_id=client_id).exists()
    assert not AccessToken.objects.filter(application__client_id=client_id, user=person).exists()


def test_pkce_plain_and_missing_pkce_are_refused(base, person):
    from oauth2_provider.models import Grant

    client_id = _register(base).json()["client_id"]
    session = requests.Session()
    _sign_in(session, base, "/", person.email)
    common = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": "mailbox:read"}
    missing = session.get(f"{base}/oauth/authorize/", params=common, allow_redirects=False, timeout=10)
    assert missing.status_code == 302 and "error=invalid_request" in missing.headers["Location"]
    # "plain" (COMPLIANT_BCP_RFC9700_PKCE_METHOD): DOT refuses it when the code would be issued.
    plain = session.get(f"{base}/oauth/authorize/", allow_redirects=False, timeout=10,
                        params={**common, "code_challenge": "x" * 43, "code_challenge_method": "plain"})
    answer = session.post(f"{base}/oauth/authorize/", data={**_form_fields(plain.text), "allow": "Allow"},
                          allow_redirects=False, timeout=10)
    assert "code=" not in answer.headers.get("Location", "")
    assert "error=invalid_request" in answer.headers.get("Location", "") or answer.status_code == 400
    assert not Grant.objects.filter(application__client_id=client_id).exists()
