"""The MCP transport at /mcp over real HTTP: protocol versions, auth challenges, throttle, DNS rebinding.

The SDK's own client (mcp.client, streamable HTTP) where it speaks the version under test; raw JSON-RPC
over HTTP where a test needs the exact headers or a version the client does not send (2025-06-18).
"""

import re
import warnings

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from accounts.scopes import SCOPES
from accounts.tokens import token_revoke
from agent.operations import registry
from tests.api_helpers import token_for
from tests.agent.mcp.conftest import ACCEPT, rpc, run

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


def _initialize(version):
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "qmailing-tests", "version": "1"}}}


async def _client_session(url, token, mode, scenario):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            return await scenario(client)


def _shown_to(account):
    """The tools a full-scope token of `account` is shown: those of its plan (the owner's PLUS: no webhooks)."""
    return {name for name, operation in registry().items() if account.plan.allows_group(operation.plan_group)}


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18"])
def test_handshake_versions_negotiate_and_keep_a_session(mcp_url, owner, version):
    token = token_for(owner)
    response, reply = rpc(mcp_url, _initialize(version), token=token)
    assert response.status_code == 200, response.text
    assert reply["result"]["protocolVersion"] == version
    assert reply["result"]["serverInfo"]["name"] == "qmailing"
    session = response.headers["Mcp-Session-Id"]
    notified, _ = rpc(mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token,
                      session=session, version=version)
    assert notified.status_code == 202
    listed, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token=token, session=session,
                        version=version)
    assert listed.status_code == 200
    assert {tool["name"] for tool in reply["result"]["tools"]} == _shown_to(owner)
    called, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                  "params": {"name": "qmailing_list_mailboxes", "arguments": {}}},
                        token=token, session=session, version=version)
    assert called.status_code == 200 and reply["result"]["isError"] is False
    assert reply["result"]["structuredContent"]["items"][0]["address"]
    # The session is bound to whoever opened it: another account's token cannot use it.
    stranger = token_for(owner.__class__.objects.exclude(pk=owner.pk).first() or _other_account())
    hijack, _ = rpc(mcp_url, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, token=stranger, session=session,
                    version=version)
    assert hijack.status_code == 404


def _other_account():
    from tests.conftest import make_user

    return make_user("stranger@example.net").account


def test_sdk_client_on_2025_11_25_with_a_session(mcp_url, owner):
    async def scenario(client):
        assert client.protocol_version == "2025-11-25"
        assert client.session.initialize_result.server_info.name == "qmailing"
        with warnings.catch_warnings():  # ping is deprecated only for 2026-07-28; this is 2025-11-25
            warnings.simplefilter("ignore")
            await client.send_ping()
        tools = await client.list_tools()
        result = await client.call_tool("qmailing_list_mailboxes", {})
        return tools, result

    tools, result = run(_client_session(mcp_url, token_for(owner), "legacy", scenario))
    assert {tool.name for tool in tools.tools} == _shown_to(owner)
    assert not result.is_error and result.structured_content["items"]


def test_sdk_client_on_session_less_2026_07_28(mcp_url, owner):
    async def scenario(client):
        assert client.protocol_version == "2026-07-28"
        tools = await client.list_tools()
        result = await client.call_tool("qmailing_list_mailboxes", {"limit": 1})
        return tools, result

    tools, result = run(_client_session(mcp_url, token_for(owner), "2026-07-28", scenario))
    assert {tool.name for tool in tools.tools} == _shown_to(owner)
    assert not result.is_error and len(result.structured_content["items"]) == 1


def test_sdk_client_auto_mode_picks_2026_07_28(mcp_url, owner):
    async def scenario(client):
        return client.protocol_version

    assert run(_client_session(mcp_url, token_for(owner), "auto", scenario)) == "2026-07-28"


def test_modern_request_carries_no_session(mcp_url, owner):
    response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                    "params": {"_meta": _modern_meta()}}, token=token_for(owner), version="2026-07-28")
    assert response.status_code == 200, response.text
    assert "Mcp-Session-Id" not in response.headers and reply["result"]["tools"]


def _modern_meta():
    return {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "qmailing-tests", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}


def _challenge(response):
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def test_no_token_is_401_with_resource_metadata_and_every_scope(base, mcp_url, transactional_db):
    response, _ = rpc(mcp_url, _initialize("2025-06-18"))
    assert response.status_code == 401
    params = _challenge(response)
    assert params["resource_metadata"] == f"{base}/.well-known/oauth-protected-resource/mcp"
    assert params["scope"].split() == sorted(SCOPES)
    assert response.json()["code"] == "unauthenticated"
    metadata = requests.get(params["resource_metadata"], timeout=10).json()
    assert metadata["resource"].rstrip("/") == mcp_url and set(metadata["scopes_supported"]) == set(SCOPES)
    assert metadata["authorization_servers"]


def test_revoked_token_is_refused_on_its_next_request(mcp_url, owner):
    token = token_for(owner)
    response, reply = rpc(mcp_url, _initialize("2025-11-25"), token=token)
    assert response.status_code == 200 and reply["result"]
    session = response.headers["Mcp-Session-Id"]
    _revoke(owner, token)
    again, _ = rpc(mcp_url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token=token, session=session,
                   version="2025-11-25")
    assert again.status_code == 401
    params = _challenge(again)
    assert params["error"] == "invalid_token" and "resource_metadata" in params and params["scope"]


def _revoke(account, plaintext):
    from accounts.tokens import token_lookup

    token_revoke(account=account, token_id=token_lookup(plaintext).pk)


def test_malformed_token_is_401(mcp_url, transactional_db):
    response, _ = rpc(mcp_url, _initialize("2025-06-18"), token="qm_live_nope")
    assert response.status_code == 401 and _challenge(response)["error"] == "invalid_token"


def test_foreign_host_is_refused(asgi_server, owner):
    response = requests.post(f"{asgi_server.url}/mcp", json=_initialize("2025-06-18"),
                             headers={"Accept": ACCEPT, "Host": "evil.example", "Authorization": f"Bearer {token_for(owner)}"},
                             timeout=10)
    assert response.status_code == 421


def test_foreign_origin_is_refused(mcp_url, owner):
    response, _ = rpc(mcp_url, _initialize("2025-06-18"), token=token_for(owner),
                      headers={"Origin": "http://evil.example"})
    assert response.status_code == 403


def test_allowed_origin_is_accepted(mcp_url, owner, settings):
    assert settings.QMAILING_MCP_ALLOWED_ORIGINS == ["http://localhost:8000"]  # QMAILING_BASE_URL's origin
    response, reply = rpc(mcp_url, _initialize("2025-06-18"), token=token_for(owner),
                          headers={"Origin": "http://localhost:8000"})
    assert response.status_code == 200 and reply["result"]["protocolVersion"] == "2025-06-18"


@pytest.mark.parametrize("origin", ["http://[::1]:8000", "http://127.0.0.1:8000", "HTTP://[::1]:8000"])
def test_loopback_aliases_of_an_allowed_origin_are_accepted(mcp_url, owner, origin):
    # The default origin is http://localhost:8000, and [::1] and 127.0.0.1 are allowed hosts (DJANGO_ALLOWED_HOSTS).
    response, reply = rpc(mcp_url, _initialize("2025-06-18"), token=token_for(owner), headers={"Origin": origin})
    assert response.status_code == 200 and reply["result"]["protocolVersion"] == "2025-06-18"


@pytest.mark.parametrize("origin", ["http://[::1]:8001", "https://[::1]:8000", "http://[::2]:8000"])
def test_loopback_origin_on_another_port_or_scheme_is_refused(mcp_url, owner, origin):
    response, _ = rpc(mcp_url, _initialize("2025-06-18"), token=token_for(owner), headers={"Origin": origin})
    assert response.status_code == 403


def test_loopback_aliases_follow_the_allowed_hosts(settings):
    from agent.mcp.server import allowed_origins

    settings.QMAILING_MCP_ALLOWED_ORIGINS = ["http://[::1]:9000", "https://mail.example.com"]
    settings.ALLOWED_HOSTS = ["localhost", "[::1]", "mail.example.com"]
    assert allowed_origins() == {"http://[::1]:9000", "http://localhost:9000", "https://mail.example.com"}
    settings.ALLOWED_HOSTS = ["mail.example.com"]  # no loopback host allowed: no alias, only what was configured
    assert allowed_origins() == {"http://[::1]:9000", "https://mail.example.com"}


def test_get_without_session_is_405(mcp_url, transactional_db):
    response = requests.get(mcp_url, headers={"Accept": "text/event-stream"}, timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_trailing_slash_is_served_too(mcp_url, owner):
    response, reply = rpc(mcp_url + "/", _initialize("2025-06-18"), token=token_for(owner))
    assert response.status_code == 200 and reply["result"]["protocolVersion"] == "2025-06-18"


def test_throttle_is_http_429_with_retry_after(mcp_url, owner, settings):
    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 2
    token = token_for(owner)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "qmailing_list_mailboxes", "arguments": {}, "_meta": _modern_meta()}}
    for _ in range(2):
        response, reply = rpc(mcp_url, call, token=token, version="2026-07-28")
        assert response.status_code == 200 and reply["result"]["isError"] is False
        assert response.headers["X-RateLimit-Limit"] == "2"
    # tools/list is not metered: it never eats the budget.
    listed, _ = rpc(mcp_url, {"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": {"_meta": _modern_meta()}},
                    token=token, version="2026-07-28")
    assert listed.status_code == 200
    response, _ = rpc(mcp_url, call, token=token, version="2026-07-28")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.json()["code"] == "rate_limited"
    from accounts.models import RequestLog
    from accounts.request_log import request_log_flush

    request_log_flush()
    assert sorted(RequestLog.objects.filter(account=owner).values_list("status", flat=True)) == [200, 200, 429]


def _sse_events(lines):
    """SSE events (dicts of their fields, `data` joined) from an iterator of decoded lines."""
    event = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        event[field] = event.get(field, "") + ("\n" if field == "data" and field in event else "") + value


def _open_session(mcp_url, token, version):
    response, _ = rpc(mcp_url, _initialize(version), token=token)
    session = response.headers["Mcp-Session-Id"]
    rpc(mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token, session=session,
        version=version)
    return session


def _call_stream(mcp_url, token, session, version, call_id=2):
    return requests.post(mcp_url, json={"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                                        "params": {"name": "qmailing_list_mailboxes", "arguments": {}}},
                         headers={"Accept": ACCEPT, "Content-Type": "application/json", "Mcp-Session-Id": session,
                                  "MCP-Protocol-Version": version, "Authorization": f"Bearer {token}"},
                         timeout=30)


def test_sse_stream_opens_with_a_priming_event_and_resumes_after_it(mcp_url, owner):
    from agent.mcp.resume import RETRY_MILLISECONDS

    token = token_for(owner)
    session = _open_session(mcp_url, token, "2025-11-25")
    response = _call_stream(mcp_url, token, session, "2025-11-25")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = list(_sse_events(response.text.splitlines()))
    priming, answer = events[0], events[-1]
    # SEP-1699: first an event with an id, empty data and the reconnection delay; then the answer, with its id.
    assert priming["id"] and priming["data"] == "" and priming["retry"] == str(RETRY_MILLISECONDS)
    assert answer["id"] and answer["id"] != priming["id"] and '"isError":false' in answer["data"].replace(" ", "")
    # A client whose connection dropped right after the priming event reconnects with it and gets the answer.
    with requests.get(mcp_url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": session,
                                        "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": priming["id"],
                                        "Authorization": f"Bearer {token}"}, stream=True, timeout=30) as replay:
        assert replay.status_code == 200
        replayed = next(event for event in _sse_events(replay.iter_lines(decode_unicode=True)) if event.get("data"))
    assert replayed == {**answer, "event": replayed.get("event", answer.get("event"))}


def test_sse_stream_of_an_older_version_has_no_priming_event(mcp_url, owner):
    token = token_for(owner)
    session = _open_session(mcp_url, token, "2025-06-18")
    events = list(_sse_events(_call_stream(mcp_url, token, session, "2025-06-18").text.splitlines()))
    # Clients of versions before 2025-11-25 may read an empty data field as broken JSON: only the answer.
    assert len(events) == 1 and events[0]["data"].startswith("{")


def test_replay_never_crosses_sessions(mcp_url, owner):
    token = token_for(owner)
    first = _open_session(mcp_url, token, "2025-11-25")
    priming = list(_sse_events(_call_stream(mcp_url, token, first, "2025-11-25", call_id=7).text.splitlines()))[0]
    second = _open_session(mcp_url, token, "2025-11-25")
    # The first session's answer follows that priming event; the second session has a store of its own, where the
    # id names nothing of the first's, so its reconnection replays nothing.
    with requests.get(mcp_url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": second,
                                        "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": priming["id"],
                                        "Authorization": f"Bearer {token}"}, stream=True, timeout=5) as replay:
        try:
            body = replay.raw.read(4096, decode_content=True)
        except requests.exceptions.ConnectionError:  # read timeout: an open stream with nothing on it
            body = b""
    assert b'"id":7' not in body.replace(b" ", b"")
