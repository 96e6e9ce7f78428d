"""CORS on /mcp for browser-based MCP clients: only for origins in QMAILING_MCP_ALLOWED_ORIGINS.

The endpoint bypasses Django (django-cors-headers does not apply), so agent.mcp.http answers the
preflight before authentication and adds the CORS headers to every response, the 401 included.
"""

import pytest
import requests

from tests.api_helpers import token_for
from tests.agent.mcp.conftest import rpc

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ALLOWED = "http://localhost:8000"  # QMAILING_BASE_URL's origin, the default QMAILING_MCP_ALLOWED_ORIGINS


def _initialize():
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "browser", "version": "1"}}}


def _preflight(url, origin):
    return requests.options(url, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version"}, timeout=10)


def _exposed(response):
    return {name.strip().lower() for name in response.headers["Access-Control-Expose-Headers"].split(",")}


def test_preflight_from_an_allowed_origin_is_204_without_a_token(mcp_url, settings):
    assert settings.QMAILING_MCP_ALLOWED_ORIGINS == [ALLOWED]
    response = _preflight(mcp_url, ALLOWED)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")} == \
        {"GET", "POST", "DELETE", "OPTIONS"}
    assert {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")} >= \
        {"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id",
         "mcp-method", "mcp-name"}
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_responses_to_an_allowed_origin_carry_cors_headers(mcp_url, owner):
    response, reply = rpc(mcp_url, _initialize(), token=token_for(owner), headers={"Origin": ALLOWED})
    assert response.status_code == 200 and reply["result"]["protocolVersion"] == "2025-06-18"
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"mcp-session-id", "www-authenticate", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining",
            "x-ratelimit-reset"} <= _exposed(response)
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_the_401_carries_cors_headers_so_a_browser_can_read_the_challenge(mcp_url, transactional_db):
    response, _ = rpc(mcp_url, _initialize(), headers={"Origin": ALLOWED})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "www-authenticate" in _exposed(response)
    assert "resource_metadata=" in response.headers["WWW-Authenticate"]


def test_other_origins_get_the_403_and_no_cors(mcp_url, owner):
    preflight = _preflight(mcp_url, "http://evil.example")
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response, _ = rpc(mcp_url, _initialize(), token=token_for(owner), headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "Access-Control-Allow-Origin" not in response.headers


def test_requests_without_origin_get_no_cors_headers(mcp_url, owner):
    response, _ = rpc(mcp_url, _initialize(), token=token_for(owner))
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
