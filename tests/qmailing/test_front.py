"""`run_all --web-workers 2`, started for real: two daphne processes behind the front (qmailing.front) on one port.

MCP sessions stay on the process that opened them (the SDK's client: initialize, tools/list, tools/call, a
subscription whose notification arrives on the GET stream); pages, REST and the dashboard's websocket work
through the front; and when one process dies the other keeps serving while the dead one's sessions answer 404,
so their clients open new ones (the MCP spec's rule for an unknown session)."""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import warnings

import anyio
import httpx2
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client as DjangoClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Mailbox
from qmailing.front import worker_of_session
from tests.api_helpers import token_for
from tests.conftest import make_user
from tests.faults import free_port, port_open
from tests.mailboxes.inbound_helpers import make_message
from tests.qmailing.test_processes import _database_env
from tests.timing import wait_until

ROOT = settings.BASE_DIR
UPDATED = "notifications/resources/updated"


def test_session_ids_carry_the_index_the_front_reads():
    from agent.mcp.sessions import worker_session_prefix

    assert worker_of_session(f"{worker_session_prefix('3')}0123abcd".encode()) == 3
    assert worker_of_session(b"0123abcd") is None  # an id of a single process: round-robin, its owner answers
    assert worker_of_session(None) is None


class RunAll:
    """`manage.py run_all --web-workers N` on the test database; its log, and the pids and ports it names."""

    def __init__(self, tmp_path, web_workers):
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        env.update(_database_env(), QMAILING_VAR_DIR=str(settings.VAR_DIR), DJANGO_DEBUG="true",
                   QMAILING_SMTP_PORT=str(free_port()), REDIS_URL=settings.REDIS_URL or "", PYTHONUNBUFFERED="1")
        self.port = free_port()
        self.log_path = tmp_path / "run_all.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "run_all", "--port", str(self.port),
                                      "--web-workers", str(web_workers)],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(lambda: len(self.worker_ports()) == web_workers and all(map(port_open, self.worker_ports()))
                       and self._answers(), 120, f"run_all's web processes (log: {self.log_path})", interval=0.25)
        except BaseException:
            self.stop()
            raise

    def worker_ports(self):
        return [int(port) for port in re.findall(r"\[run_all\] started web\d \(pid \d+\): .* -p (\d+) ", self.text())]

    def text(self):
        return self.log_path.read_text(errors="replace")

    def _answers(self):
        try:
            with urllib.request.urlopen(f"{self.base}/accounts/login/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def pid(self, name):
        return int(re.findall(rf"\[run_all\] started {name} \(pid (\d+)\)", self.text())[-1])

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=40)
        finally:
            self.log.close()
        return code


async def _open(url, token, opened, message_handler=None):
    """An SDK client's session, its transport's responses' session ids appended to `opened`."""
    async def seen(response):
        session_id = response.headers.get("mcp-session-id")
        if session_id:
            opened.append(session_id)

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                              event_hooks={"response": [seen]})
    client = Client(streamable_http_client(url, http_client=http), mode="legacy", message_handler=message_handler)
    return http, client


def _ingest_soon(mailbox, subject, delay):
    def work():
        import time

        time.sleep(delay)
        try:
            email_ingest(mailbox=mailbox, raw=make_message(subject=subject))
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _websocket(port, cookie):
    """A websocket to the dashboard's live page endpoint through the front: (socket, the 101 head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/mail/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                  f"Cookie: {settings.SESSION_COOKIE_NAME}={cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock, head.decode()


def _read_frame(sock):
    """One unmasked server frame: (opcode, payload)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


@pytest.mark.redis  # several web processes share their rate limits and the daily cap through Redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_web_processes_behind_one_port(tmp_path):
    user = make_user("front@example.org")
    account = user.account
    mailbox = Mailbox.objects.filter(account=account).order_by("created_at").first()
    token = token_for(account)
    browser = DjangoClient()
    browser.force_login(user)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    connections.close_all()

    server = RunAll(tmp_path, web_workers=2)
    try:
        url = f"{server.base}/mcp"

        # (b) pages and REST through the front, spread over both processes.
        for _ in range(4):
            request = urllib.request.Request(f"{server.base}/api/v1/pub/mailboxes",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                assert json.loads(response.read())["items"][0]["id"] == str(mailbox.pk)
        served_by = re.findall(r"^\s*(web\d) \| .*\"GET /api/v1/pub/mailboxes", server.text(), re.M)
        assert sorted(set(served_by)) == ["web0", "web1"], served_by

        # (c) the dashboard's websocket through the front: upgraded, then a live update when mail arrives.
        sock, head = _websocket(server.port, cookie)
        assert head.startswith("HTTP/1.1 101"), head

        # (a) two SDK sessions, one per process; every request of each reaches its own process (on the other one
        # it would be an unknown session: 404), and the subscription's notification arrives on the GET stream.
        async def sessions():
            opened_a, opened_b, notes = [], [], []
            arrived = anyio.Event()

            async def on_message(message):
                if getattr(message, "method", None) == UPDATED:
                    notes.append(str(message.params.uri))
                    arrived.set()

            http_a, client_a = await _open(url, token, opened_a, on_message)
            http_b, client_b = await _open(url, token, opened_b)
            async with http_a, http_b, client_a, client_b:
                for client in (client_a, client_b):
                    tools = await client.list_tools()
                    assert "qmailing_list_mailboxes" in {tool.name for tool in tools.tools}
                    result = await client.call_tool("qmailing_list_mailboxes", {})
                    assert result.is_error is False
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await client_a.subscribe_resource(f"mailbox://{mailbox.pk}/events")
                ingest = _ingest_soon(mailbox, "Through the front", delay=1.0)
                with anyio.move_on_after(15):
                    await arrived.wait()
                await anyio.to_thread.run_sync(ingest.join)
                assert notes == [f"mailbox://{mailbox.pk}/events"]
                workers = {worker_of_session(opened_a[0].encode()), worker_of_session(opened_b[0].encode())}
                assert workers == {0, 1}, (opened_a, opened_b)
                assert set(opened_a) == {opened_a[0]} and set(opened_b) == {opened_b[0]}

                # (d) the process of session A dies: the other keeps serving, A's requests answer 404.
                os.kill(server.pid(f"web{worker_of_session(opened_a[0].encode())}"), signal.SIGKILL)
                await anyio.sleep(0.5)
                for _ in range(3):
                    assert (await client_b.call_tool("qmailing_list_mailboxes", {})).is_error is False
                with pytest.raises(MCPError) as refused:
                    await client_a.call_tool("qmailing_list_mailboxes", {})
                assert "Session not found" in str(refused.value), refused.value  # the front's 404, as the spec has it
                # … so the client opens a new session, on a live process, and carries on.
                opened_c = []
                http_c, client_c = await _open(url, token, opened_c)
                async with http_c, client_c:
                    assert (await client_c.call_tool("qmailing_list_mailboxes", {})).is_error is False
                assert worker_of_session(opened_c[0].encode()) == worker_of_session(opened_b[0].encode())
            return True

        assert asyncio.run(sessions())
        opcode, payload = _read_frame(sock)  # the live page heard of the mail that arrived above
        assert opcode == 1 and json.loads(payload)["type"] == "mail", payload
        sock.close()
        wait_until(lambda: "restarting it" in server.text() and all(map(port_open, server.worker_ports())), 60, f"run_all to restart the dead web process (log: {server.log_path})", interval=0.25)
    finally:
        code = server.stop()
    text = server.text()
    assert code == 0, text[-3000:]
    assert "[run_all] front stopped." in text and "[run_all] web0 stopped." in text and "[run_all] web1 stopped." in text


def test_several_web_processes_without_redis_are_refused(settings):
    """Each process would keep its own rate-limit counters and daily cap: N processes, N times the plan."""
    from django.core.management import CommandError, call_command

    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="needs REDIS_URL"):
        call_command("run_all", "--web-workers", "2")
