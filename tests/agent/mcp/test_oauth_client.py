"""The OAuth flow as a real MCP client runs it: the SDK's OAuthClientProvider, from the /mcp URL alone.

Over real HTTP against the in-process server: the first MCP request gets 401 with `WWW-Authenticate:
Bearer resource_metadata=...`; the provider fetches the protected-resource metadata (RFC 9728), the
authorization server's metadata (RFC 8414), registers itself (RFC 7591, /oauth/register/), and sends the
person to the authorization URL with PKCE S256 and `resource` (RFC 8707). The redirect handler plays
the person over HTTP: signs in at /accounts/login/, posts the consent form, and takes the code from the
Location of the consent answer (the loopback redirect URI, where nothing needs to listen). The callback
handler hands the code back; the provider exchanges it for a token and retries, and a tools/call
succeeds.
"""

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from oauth2_provider.models import AccessToken

from tests.conftest import make_user
from tests.agent.mcp.conftest import free_port, run
from tests.qmailing.test_oauth_flow import _form_fields, _sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

REDIRECT_URI = f"http://127.0.0.1:{free_port()}/callback"  # loopback; nothing listens, the test reads Location


class MemoryTokenStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Person:
    """The person at the browser, driven over HTTP: signs in and allows on the consent page."""

    def __init__(self, base, email):
        self.base, self.email = base, email
        self.authorization_urls = []
        self.redirect = None  # the query of the consent answer's Location

    def consent(self, authorization_url):
        session = requests.Session()
        response = session.get(authorization_url, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:1000]  # not signed in: to our sign-in page, and back
        location = response.headers["Location"]
        assert urlsplit(location).path == "/accounts/login/"
        back = parse_qs(urlsplit(location).query)["next"][0]
        assert _sign_in(session, self.base, back, self.email) == back
        page = session.get(f"{self.base}{back}", allow_redirects=False, timeout=10)
        assert page.status_code == 200, page.text[:1000]
        form = {**_form_fields(page.text), "allow": "Allow"}
        answer = session.post(f"{self.base}/oauth/authorize/", data=form, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text[:1000]
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?"), location
        self.redirect = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}

    async def redirect_handler(self, authorization_url):
        self.authorization_urls.append(authorization_url)
        await asyncio.to_thread(self.consent, authorization_url)  # blocking HTTP off the event loop

    async def callback_handler(self):
        assert "code" in self.redirect, self.redirect
        return AuthorizationCodeResult(code=self.redirect["code"], state=self.redirect.get("state"),
                                       iss=self.redirect.get("iss"))


def _scenario(mcp_url, person, storage, mode, seen):
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(client_name="SDK OAuth test", redirect_uris=[REDIRECT_URI],
                                            grant_types=["authorization_code", "refresh_token"],
                                            response_types=["code"], token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=person.redirect_handler, callback_handler=person.callback_handler)

    async def log(response):
        seen.append((response.request.method, urlsplit(str(response.request.url)).path, response.status_code))

    async def scenario():
        async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [log]}) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
                return await client.call_tool("qmailing_list_mailboxes", {})

    return run(scenario())


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_sdk_oauth_client_connects_from_the_url_alone(mcp_url, base, mode):
    user = make_user("oauth-agent@example.org")
    person, storage, seen = Person(base, user.email), MemoryTokenStorage(), []

    result = _scenario(mcp_url, person, storage, mode, seen)

    assert result.is_error is False, result
    assert result.structured_content["items"][0]["address"] == user.account.mailboxes.get().address
    # The flow, in order, as it went over the wire.
    paths = [(method, path, status) for method, path, status in seen]
    assert paths[0] == ("POST", "/mcp", 401)
    steps = [(method, path) for method, path, status in paths if status in (200, 201)]
    for step in [("GET", "/.well-known/oauth-protected-resource/mcp"),
                 ("GET", "/.well-known/oauth-authorization-server"),
                 ("POST", "/oauth/register/"), ("POST", "/oauth/token/"), ("POST", "/mcp")]:
        assert step in steps, (step, paths)
    assert steps.index(("POST", "/oauth/register/")) < steps.index(("POST", "/oauth/token/")) < \
        steps.index(("POST", "/mcp"))
    # The authorization request: PKCE S256 and the resource the token is for.
    [authorization_url] = person.authorization_urls
    query = {key: values[0] for key, values in parse_qs(urlsplit(authorization_url).query).items()}
    assert urlsplit(authorization_url).path == "/oauth/authorize/"
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["resource"] == mcp_url
    assert query["redirect_uri"] == REDIRECT_URI and query["client_id"] == storage.client_info.client_id
    # What the client holds: a registered public client and a token bound to /mcp, issued to this person.
    assert storage.tokens.access_token and storage.tokens.refresh_token
    # (The registration also made a user-less registration access token, RFC 7592.)
    [token] = AccessToken.objects.filter(application__client_id=storage.client_info.client_id, user__isnull=False)
    assert token.user_id == user.pk and token.resource == [mcp_url]
    assert set(token.scope.split()) == set(storage.tokens.scope.split())
