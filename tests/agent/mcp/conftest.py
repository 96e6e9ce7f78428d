"""A real ASGI server for the MCP tests: uvicorn in a thread of the test process, serving qmailing.asgi.

In the test process, so it reads the pytest-django test database (tests mark themselves
`django_db(transaction=True)` so the rows they write are committed and visible to the server's threads).
Uvicorn sends the ASGI lifespan, so the MCP session manager starts at startup and stops at shutdown.
"""

import asyncio
import json
import os
import threading

import pytest
import requests
import uvicorn
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from tests.faults import free_port  # noqa: F401 (imported from here by the MCP tests)
from tests.timing import wait_until

ACCEPT = "application/json, text/event-stream"

# The Node checks (the Inspector, the TypeScript SDK client, the conformance suite) serve a database of their own,
# so CI runs them in its SQLite pass only and sets QMAILING_SKIP_INSPECTOR=1 for the PostgreSQL pass (.ci/run).
skip_node_checks = pytest.mark.skipif(
    os.environ.get("QMAILING_SKIP_INSPECTOR", "").lower() in ("1", "true", "yes"),
    reason="QMAILING_SKIP_INSPECTOR is set (CI runs the Node checks in its SQLite pass)")


class ServerThread:
    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on",
                                                    log_level="warning", ws="none"))
        self.thread = threading.Thread(target=self.server.run, name="mcp-test-server", daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()

        def started():
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            return self.server.started

        wait_until(started, 20, "uvicorn started")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker):
    from django.test import override_settings

    from qmailing.asgi import application

    server = ServerThread(application)
    # The Host check is exact (host[:port]); the test server's port is not the base URL's.
    allow_port = override_settings(QMAILING_MCP_ALLOWED_PORTS=[str(server.port)])
    allow_port.enable()
    server.start()
    yield server
    server.stop()
    allow_port.disable()
    with django_db_blocker.unblock():
        from django.db import connections

        connections.close_all()


@pytest.fixture
def base(asgi_server):
    return asgi_server.url


@pytest.fixture
def mcp_url(base):
    return f"{base}/mcp"


def sse_messages(response):
    """The JSON-RPC messages of a response: a JSON body, or the data lines of an SSE stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    messages = []
    # An event stream is UTF-8 by definition (WHATWG HTML, server-sent events); requests would guess Latin-1
    # for a text/* type without a charset.
    for line in response.content.decode("utf-8").splitlines():
        if line.startswith("data:") and line[5:].strip():
            messages.append(json.loads(line[5:]))
    return messages


def rpc(url, message, *, token=None, session=None, version=None, headers=None):
    """One raw JSON-RPC POST to the MCP endpoint: (response, the reply to `message` or None)."""
    sent = {"Accept": ACCEPT, "Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if session is not None:
        sent["Mcp-Session-Id"] = session
    if version is not None:
        sent["MCP-Protocol-Version"] = version
    if version in MODERN_PROTOCOL_VERSIONS and "method" in message:
        sent["Mcp-Method"] = message["method"]  # 2026-07-28 routes on these headers
        name = (message.get("params") or {}).get("name")
        if name:
            sent["Mcp-Name"] = name
    response = requests.post(url, json=message, headers=sent, timeout=30)
    replies = [m for m in sse_messages(response) if "id" in m and m.get("id") == message.get("id")] \
        if response.status_code == 200 else []
    return response, (replies[0] if replies else None)


def run(coroutine):
    """Run an async client scenario from a sync test (the ORM stays out of the event loop)."""
    return asyncio.run(coroutine)
