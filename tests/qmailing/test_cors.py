"""CORS for browser-based OAuth clients: the token, registration and revocation endpoints and the discovery
documents answer cross-origin requests (any origin, never with credentials); nothing else does."""

import json

import pytest

ORIGIN = "https://inspector.example"
ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
CROSS_ORIGIN_PATHS = ["/oauth/token/", "/oauth/register/", "/oauth/revoke_token/"]
DISCOVERY_PATHS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource/api/v1/pub",
]
SAME_ORIGIN_ONLY = ["/accounts/signin/", "/oauth/authorize/", "/", "/api/v1/pub/mailboxes", "/settings/developers/",
                    "/oauth/register/some-client-id/", "/.well-known/oauth-authorization-server-evil"]


def _preflight(client, path, method="POST", headers="authorization, content-type, mcp-protocol-version"):
    return client.options(path, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers)


def _no_credentials(response):
    assert response.get(ACAC) is None


@pytest.mark.django_db
@pytest.mark.parametrize("path", CROSS_ORIGIN_PATHS)
def test_preflight_of_the_oauth_endpoints_is_allowed_from_any_origin(client, path):
    response = _preflight(client, path)
    assert response.status_code == 200
    assert response[ACAO] == "*"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "mcp-protocol-version"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert int(response["Access-Control-Max-Age"]) > 0
    _no_credentials(response)


@pytest.mark.django_db
def test_a_token_request_from_another_origin_can_read_the_answer(client):
    response = client.post("/oauth/token/", {"grant_type": "authorization_code", "code": "nope", "client_id": "nobody"},
                           HTTP_ORIGIN=ORIGIN)
    assert response.status_code in (400, 401)  # the OAuth error is readable by the browser client
    assert response[ACAO] == "*"
    _no_credentials(response)


@pytest.mark.django_db
def test_a_registration_from_another_origin_can_read_the_answer(client):
    body = {"client_name": "Inspector", "redirect_uris": ["http://127.0.0.1:6274/oauth/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none"}
    response = client.post("/oauth/register/", json.dumps(body), content_type="application/json", HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 201, response.content
    assert response[ACAO] == "*"
    assert response.json()["client_id"]
    _no_credentials(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_documents_are_readable_from_another_origin(client, path):
    response = client.get(path, HTTP_ORIGIN=ORIGIN, HTTP_MCP_PROTOCOL_VERSION="2025-06-18")
    assert response.status_code == 200
    assert response[ACAO] == "*"
    _no_credentials(response)
    preflight = _preflight(client, path, method="GET", headers="mcp-protocol-version")
    assert preflight.status_code == 200 and preflight[ACAO] == "*"
    _no_credentials(preflight)


@pytest.mark.django_db
@pytest.mark.parametrize("path", SAME_ORIGIN_ONLY)
def test_pages_with_sessions_and_the_api_get_no_cors_headers(client, path):
    for response in (client.get(path, HTTP_ORIGIN=ORIGIN), _preflight(client, path, method="GET")):
        assert response.get(ACAO) is None, (path, response.status_code)
        assert response.get("Access-Control-Allow-Methods") is None
        _no_credentials(response)


@pytest.mark.django_db
def test_signed_in_pages_get_no_cors_headers(client, owner):
    client.force_login(owner.users.first())
    for path in ("/", "/settings/developers/", "/oauth/authorize/?response_type=code&client_id=x"):
        response = client.get(path, HTTP_ORIGIN=ORIGIN)
        assert response.get(ACAO) is None, path
        _no_credentials(response)
