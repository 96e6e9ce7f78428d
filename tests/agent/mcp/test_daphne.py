"""Smoke test under the production server (`daphne qmailing.asgi:application`) as a subprocess.

Daphne sends no ASGI lifespan, so this proves the MCP session manager starts on the first MCP request
and stops cleanly with the server. The subprocess gets its own SQLite file (migrated here), never the
test database, and no Redis.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx2
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
