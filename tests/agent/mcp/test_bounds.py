"""What one account may take of what every account shares on /mcp, replayed as a hostile customer would.

Sessions per token and per account (the oldest idle one evicted, or 429 when all are busy), initialize
throttled per token, requests without a valid token throttled per client IP, unused sessions ended
sooner, the exact Host and Origin match, and JSON of any bad shape answered with a parse error.
"""

import json
import time

import pytest
import requests

from tests.api_helpers import problem_of, token_for, tool_problem
from tests.timing import wait_until
from tests.agent.mcp.conftest import ACCEPT, rpc

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

VERSION = "2025-06-18"


def _initialize():
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bounds", "version": "1"}}}


def _open(mcp_url, token):
    """A new session (initialize + notifications/initialized): its id, or the refusing response."""
    response, _ = rpc(mcp_url, _initialize(), token=token)
    if response.status_code != 200:
        return None, response
    session = response.headers["mcp-session-id"]
    rpc(mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token, session=session,
        version=VERSION)
    return session, response


def _alive(mcp_url, token, session):
    response, _ = rpc(mcp_url, {"jsonrpc": "2.0", "id": 5, "method": "ping"}, token=token, session=session,
                      version=VERSION)
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def _hold_stream(mcp_url, token, session):
    """The session's GET stream, left open: the session has a request in flight, so it is not idle."""
    response = requests.get(mcp_url, stream=True, timeout=30, headers={
        "Accept": "text/event-stream", "Authorization": f"Bearer {token}", "Mcp-Session-Id": session,
        "MCP-Protocol-Version": VERSION})
    assert response.status_code == 200
    return response


def test_at_the_token_cap_the_oldest_idle_session_makes_room(mcp_url, owner, settings):
    settings.QMAILING_MCP_SESSIONS_PER_TOKEN = 3
    token = token_for(owner)
    sessions = [_open(mcp_url, token)[0] for _ in range(3)]
    assert all(_alive(mcp_url, token, session) for session in sessions)
    _alive(mcp_url, token, sessions[0])  # the first is now the most recently active: the second is the oldest idle
    newest, _ = _open(mcp_url, token)
    assert newest is not None
    assert not _alive(mcp_url, token, sessions[1])  # evicted: its id answers 404, as an expired one does
    assert all(_alive(mcp_url, token, session) for session in (sessions[0], sessions[2], newest))


def test_when_every_session_is_busy_the_new_one_gets_a_429_and_others_are_unaffected(mcp_url, owner, outsider,
                                                                                       settings):
    settings.QMAILING_MCP_SESSIONS_PER_TOKEN = 2
    token = token_for(owner)
    sessions = [_open(mcp_url, token)[0] for _ in range(2)]
    streams = [_hold_stream(mcp_url, token, session) for session in sessions]
    try:
        refused, response = _open(mcp_url, token)
        assert refused is None
        body = problem_of(response, 429, "too_many_sessions")
        assert body["limit"] == 2 and int(response.headers["Retry-After"]) > 0 and "DELETE" in body["detail"]
        # Another account's initialize gets exactly what it got before.
        other, response = _open(mcp_url, token_for(outsider))
        assert other is not None and response.status_code == 200
        assert all(_alive(mcp_url, token, session) for session in sessions)  # nothing of the owner's was lost
    finally:
        for stream in streams:
            stream.close()


def test_the_account_cap_spans_its_tokens(mcp_url, owner, outsider, settings):
    settings.QMAILING_MCP_SESSIONS_PER_TOKEN = 10
    settings.QMAILING_MCP_SESSIONS_PER_ACCOUNT = 3
    tokens = [token_for(owner, client=f"Client {n}") for n in range(3)]
    sessions = [(token, _open(mcp_url, token)[0]) for token in tokens]
    streams = [_hold_stream(mcp_url, token, session) for token, session in sessions]
    try:
        problem_of(_open(mcp_url, token_for(owner, client="Fourth"))[1], 429, "too_many_sessions")
        assert _open(mcp_url, token_for(outsider))[0] is not None
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: _busy_sessions(owner) == 0, 10, "the streams' ends reached the server")
    assert _open(mcp_url, tokens[0])[0] is not None  # idle now: the oldest is evicted to make room


def test_initialize_is_throttled_per_token(mcp_url, owner, settings):
    settings.QMAILING_MCP_INITIALIZE_PER_MINUTE = 3
    token = token_for(owner)
    for _ in range(3):
        assert _open(mcp_url, token)[0] is not None
    refused, response = _open(mcp_url, token)
    body = problem_of(response, 429, "rate_limited")
    assert body["retryAfter"] > 0 and "initializ" in body["detail"]
    assert _open(mcp_url, token_for(owner, client="Another client"))[0] is not None  # per token


def test_requests_without_a_valid_token_are_throttled_per_client_ip(mcp_url, transactional_db, settings):
    settings.QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE = 3
    settings.QMAILING_RATELIMIT_KEY_PREFIX = f"qmailing:test-unauth:{time.time_ns()}:"  # a fresh budget
    for _ in range(3):
        response, _ = rpc(mcp_url, _initialize(), token="qm_live_nope")
        assert response.status_code == 401
    response, _ = rpc(mcp_url, _initialize(), token="qm_live_nope")
    problem_of(response, 429, "rate_limited")


def test_a_session_that_never_called_a_tool_ends_sooner(mcp_url, owner, settings):
    settings.QMAILING_MCP_UNUSED_SESSION_SECONDS = 1
    token = token_for(owner)
    unused, _ = _open(mcp_url, token)
    used, _ = _open(mcp_url, token)
    response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                    "params": {"name": "qmailing_list_mailboxes", "arguments": {}}},
                          token=token, session=used, version=VERSION)
    assert response.status_code == 200 and reply["result"]["isError"] is False
    # the reaper looks every few seconds (agent.mcp.sessions.REAP_EVERY_SECONDS)
    wait_until(lambda: not _session_exists(unused), 15, "the unused session reaped", interval=0.2)
    assert _alive(mcp_url, token, used)


def _session_exists(session):
    from qmailing.asgi import mcp_endpoint

    return session in mcp_endpoint.runtime.manager.owners


def _busy_sessions(account):
    """How many of the account's sessions have a request or stream in flight on the server."""
    from qmailing.asgi import mcp_endpoint

    return sum(1 for o in list(mcp_endpoint.runtime.manager.owners.values())
               if str(o.account_id) == str(account.pk) and o.in_flight)


# --- Host and Origin: exact matches; nothing a client made up is echoed.

@pytest.mark.parametrize("host", ["127.0.0.1:1@evil.test", "localhost:8000@evil.test", "localhost:8000/x",
                                  "127.0.0.1:9", "evil.test", "localhost.evil.test:8000", "127.0.0.1:80 "])
def test_a_host_that_is_not_exactly_ours_is_refused_without_echo(asgi_server, owner, host):
    response = requests.post(f"{asgi_server.url}/mcp", json=_initialize(), timeout=10, headers={
        "Accept": ACCEPT, "Host": host, "Authorization": "Bearer qm_live_nope"})
    assert response.status_code == 421
    assert "evil" not in response.text and "www-authenticate" not in response.headers


def test_the_served_host_and_port_pass(asgi_server, owner):
    # Compared as a name is: any case, one trailing dot; the SDK behind us is handed the same normalised value.
    for host in (f"127.0.0.1:{asgi_server.port}", "localhost:8000", "localhost", "LOCALHOST:8000", "localhost.:8000"):
        response = requests.post(f"{asgi_server.url}/mcp", json=_initialize(), timeout=10, headers={
            "Accept": ACCEPT, "Host": host, "Authorization": f"Bearer {token_for(owner)}"})
        assert response.status_code == 200, host


@pytest.mark.parametrize("origin", ["http://localhost:8000.evil.test", "http://localhost:8001", "null",
                                    "http://localhost:8000@evil.test", "https://localhost:8000"])
def test_an_origin_that_is_not_exactly_allowed_is_refused(mcp_url, owner, origin):
    response, _ = rpc(mcp_url, _initialize(), token=token_for(owner), headers={"Origin": origin})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers


# --- JSON of any bad shape: a JSON-RPC parse error with HTTP 400, never a 500.

MALFORMED = {
    "depth 10,000": b"[" * 10_000 + b"]" * 10_000,
    "depth 65 in an object": (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
                              + b'{"a": ' * 65 + b"1" + b"}" * 65 + b"}"),
    "NaN": b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": NaN}}',
    "Infinity": b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": -Infinity}}',
    "1e999": b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": 1e999}}',
    "a 5,000-digit integer": b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "ping"}',
    "not UTF-8": b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
    "a lone surrogate": b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "\\ud800"}}',
    "truncated": b'{"jsonrpc": "2.0", "id": 1, "method": "ping"',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_a_parse_error(mcp_url, owner, body):
    token = token_for(owner)
    session, _ = _open(mcp_url, token)
    for extra in ({}, {"Mcp-Session-Id": session, "MCP-Protocol-Version": VERSION}):
        response = requests.post(mcp_url, data=body, timeout=30, headers={
            "Accept": ACCEPT, "Content-Type": "application/json", "Authorization": f"Bearer {token}", **extra})
        assert response.status_code == 400, response.text
        reply = response.json()
        assert reply["jsonrpc"] == "2.0" and reply["id"] is None and reply["error"]["code"] == -32700
    assert _alive(mcp_url, token, session)  # the server, and the session, carry on


def test_json_at_the_depth_limit_is_accepted(mcp_url, owner):
    nested = json.loads("{\"a\": " * 60 + "1" + "}" * 60)
    token = token_for(owner)
    session, _ = _open(mcp_url, token)
    response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                    "params": {"name": "qmailing_list_mailboxes", "arguments": {"x": nested}}},
                          token=token, session=session, version=VERSION)
    assert response.status_code == 200, response.text
    # refused by the tool's schema (unknown argument), not by the parser
    tool_problem(reply["result"], "validation_error")


def test_a_revoked_tokens_open_get_stream_ends_and_frees_its_slot(mcp_url, owner, settings):
    from accounts.tokens import token_lookup, token_revoke

    settings.QMAILING_MCP_SESSIONS_PER_ACCOUNT = 1
    leaked = token_for(owner, client="Leaked")
    session, _ = _open(mcp_url, leaked)
    stream = _hold_stream(mcp_url, leaked, session)  # busy: never evicted as idle
    try:
        problem_of(_open(mcp_url, token_for(owner, client="Owner"))[1], 429, "too_many_sessions")
        token_revoke(account=owner, token_id=token_lookup(leaked).pk)
        # the reaper checks tokens every few seconds
        wait_until(lambda: not _session_exists(session), 15, "the revoked token's session reaped", interval=0.2)
        assert b"".join(stream.iter_content(chunk_size=None)) is not None  # the stream is closed: reading ends
    finally:
        stream.close()
    assert _open(mcp_url, token_for(owner, client="Owner again"))[0] is not None  # the slot is free again
