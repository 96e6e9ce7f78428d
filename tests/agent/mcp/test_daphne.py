"""Smoke test under the production server (`daphne qmailing.asgi:application`) as a subprocess.

Daphne sends no ASGI lifespan, so this proves the MCP session manager starts on the first MCP request
and stops cleanly with the server. The subprocess gets its own SQLite file (migrated here), never the
test database, and no Redis.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from django.conf import settings
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.agent.mcp.conftest import run
from tests.faults import daphne

ROOT = Path(__file__).resolve().parents[3]


def _manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def migrated_sqlite_env(tmp_path):
    """The environment of a server on an SQLite file of its own in `tmp_path`, migrated: never the test
    database, and no Redis."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(QMAILING_VAR_DIR=str(tmp_path), QMAILING_SQLITE_PATH=str(tmp_path / "daphne.sqlite3"),
               DJANGO_SETTINGS_MODULE="qmailing.settings", PYTHONUNBUFFERED="1")
    _manage(env, "migrate", "--noinput")
    return env


def test_initialize_list_and_call_under_daphne(tmp_path):
    env = migrated_sqlite_env(tmp_path)
    _manage(env, "shell", "-c", "from accounts.services import account_signup; "
                                "account_signup(email='daphne@example.org', password='correct horse battery 9', "
                                "full_name='Daphne')")
    token = _manage(env, "issue_token", "daphne@example.org", "--client", "Smoke", "--scopes", "mailbox:read").strip()
    with daphne(env, tmp_path / "daphne.log") as base_url:
        async def scenario(mode):
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
                async with Client(streamable_http_client(f"{base_url}/mcp", http_client=http),
                                  mode=mode) as client:
                    tools = await client.list_tools()
                    result = await client.call_tool("qmailing_list_mailboxes", {})
                    return client.protocol_version, tools, result

        for mode, version in (("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")):
            negotiated, tools, result = run(scenario(mode))
            assert negotiated == version
            assert "qmailing_list_mailboxes" in {tool.name for tool in tools.tools}
            assert result.is_error is False
            assert result.structured_content["items"][0]["address"].startswith("daphne")
    output = (tmp_path / "daphne.log").read_text()
    assert "StreamableHTTP session manager started" in output
    assert "MCP session manager stopped" in output, output[-3000:]
    assert "Traceback" not in output and "Task was destroyed" not in output, output[-3000:]


REVOKE = ("from accounts.models import User; from accounts.tokens import token_list, token_revoke; "
          "account = User.objects.get(email='daphne@example.org').account; "
          "token_revoke(account=account, token_id=token_list(account=account).get().pk)")
COUNT_ROWS = "from accounts.models import RequestLog; print(RequestLog.objects.count())"


def _signed_up_with_token(env):
    _manage(env, "shell", "-c", "from accounts.services import account_signup; "
                                "account_signup(email='daphne@example.org', password='correct horse battery 9', "
                                "full_name='Daphne')")
    return _manage(env, "issue_token", "daphne@example.org", "--client", "Smoke", "--scopes", "mailbox:read").strip()


@pytest.mark.parametrize("with_redis", [False, pytest.param(True, marks=pytest.mark.redis)],
                         ids=["embedded", "redis"])
def test_a_token_revoked_by_another_process_is_refused_on_the_next_call(tmp_path, with_redis):
    """The server caches a token once it authenticated a call (agent.token_cache); a revocation made in another
    process (a management shell here) reaches it before the next call: through Redis, or on the embedded default
    through the stamp file in QMAILING_VAR_DIR. Both surfaces are refused on that very next call."""
    env = migrated_sqlite_env(tmp_path)
    if with_redis:
        env["REDIS_URL"] = settings.REDIS_URL
    token = _signed_up_with_token(env)
    headers = {"Authorization": f"Bearer {token}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "qmailing_list_mailboxes", "arguments": {},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    with daphne(env, tmp_path / "daphne.log") as base_url:
        with httpx2.Client(timeout=30) as http:
            for _ in range(3):  # the first call fills the cache, the others are answered from it
                assert http.get(f"{base_url}/api/v1/pub/mailboxes", headers=headers).status_code == 200
            _manage(env, "shell", "-c", REVOKE)
            refused = http.get(f"{base_url}/api/v1/pub/mailboxes", headers=headers)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
            mcp = http.post(f"{base_url}/mcp", json=call, headers={
                **headers, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28"})
            assert mcp.status_code == 401


def test_a_server_stopped_with_sigterm_has_written_every_request_log_row(tmp_path):
    """Rows wait in the process's buffer (accounts.request_log; the interval is an hour here, so none is written
    while it runs) and the clean shutdown writes them all."""
    env = {**migrated_sqlite_env(tmp_path), "QMAILING_REQUEST_LOG_FLUSH_SECONDS": "3600"}
    token = _signed_up_with_token(env)
    with daphne(env, tmp_path / "daphne.log", stop_signal=signal.SIGTERM) as base_url:
        with httpx2.Client(timeout=30) as http:
            for _ in range(7):
                assert http.get(f"{base_url}/api/v1/pub/mailboxes",
                                headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert _manage(env, "shell", "-c", COUNT_ROWS).split()[-1] == "0"  # buffered, not written yet
    assert _manage(env, "shell", "-c", COUNT_ROWS).split()[-1] == "7"
    output = (tmp_path / "daphne.log").read_text()
    assert "Traceback" not in output, output[-3000:]
