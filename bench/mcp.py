"""Throughput and latency of the MCP server over real HTTP: `tools/call qmailing_list_mailboxes` with every gate,
beside a bare SDK server with one trivial tool, on one daphne server; and the memory of idle sessions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qm_bench_mcp REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/mcp.py [--calls 1000] [--clients 1,16] [--sessions 1000] [--breakdown] [--profile]
    .venv/bin/python bench/mcp.py --embedded    # SQLite in a temporary folder and in-process counters

The database must be empty (a fresh one: `bench/smoke` creates one per benchmark): the benchmark migrates it
and creates a PLUS account (no daily cap), a few mailboxes and a real `qm_live_` token. Then it starts daphne
(what `run_all` starts) on a free loopback port with bench/mcp_asgi.py: the product's ASGI app
(qmailing.asgi, with /mcp in front of Django) plus, at /bare-mcp, the SDK's own MCPServer with one async
tool returning a small constant dict (no token, gates, ORM or request log) — the baseline.

The clients are raw JSON-RPC over keep-alive HTTP (http.client, one connection per client thread: a real
client that costs the client process little CPU), in two modes:
- 2026-07-28, session-less: every tools/call stands alone (MCP-Protocol-Version, Mcp-Method and Mcp-Name
  headers, the client's info in `_meta`), as the SDK's client sends it;
- 2025-06-18, with a session: each client sends initialize and notifications/initialized once (not timed),
  then tools/call with its Mcp-Session-Id, and DELETEs its session at the end.
Every qmailing call runs what a real one runs: Host/Origin checks, the token looked up by its checksum,
metering (the per-token minute counter in Redis with REDIS_URL), plan and scope gates, argument validation,
the operation and the request-log row. The per-token throttle (QMAILING_TOKEN_REQUESTS_PER_MINUTE, 300 by
default) is raised for the server, or every call past the 300th would be a 429; the counter is still
incremented on every call. Every call must answer 200 with `isError: false`.

Prints calls, p50, p99 and calls/s for {qmailing, bare} x {mode} x {1, 16 clients}, client and daphne CPU,
the throughput ratio (target: at least 50 % of bare) and the p99 at 16 clients (target: under 50 ms), whether
each target is met, and, when one is not (or with --breakdown), where the time goes, measured in-process.
Last, the daphne process's resident memory before and after opening --sessions idle sessions
(initialize on 2025-06-18 + notifications/initialized), on /mcp and then on /bare-mcp.
"""

import argparse
import asyncio
import cProfile
import http.client
import io
import itertools
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# `python bench/mcp.py` puts bench/ first on sys.path, where this file would shadow the SDK's `mcp` package.
sys.path[:] = [str(BASE_DIR)] + [p for p in sys.path if Path(p or ".").resolve() != BASE_DIR / "bench"]

from bench import api as api_bench  # noqa: E402
from bench.api import create_fixture, percentile  # noqa: E402  (the same fixture as the REST benchmark)

QMAILING = ("qmailing", "/mcp", "qmailing_list_mailboxes")
BARE = ("bare", "/bare-mcp", "bare_list")  # bench/mcp_asgi.BARE_PATH, BARE_TOOL
MODERN, HANDSHAKE = "2026-07-28", "2025-06-18"
RATIO_TARGET = 0.50
P99_TARGET_MS = 50.0
ACCEPT = "application/json, text/event-stream"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="measured tools/call per phase (default 1000)")
    parser.add_argument("--clients", default="1,16", help="concurrent clients per phase, comma separated (default 1,16)")
    parser.add_argument("--modes", default=f"{MODERN},{HANDSHAKE}",
                        help=f"protocol versions to measure (default {MODERN},{HANDSHAKE}; {HANDSHAKE} opens sessions)")
    parser.add_argument("--sessions", type=int, default=1000,
                        help="idle sessions opened for the memory figure, on each server (default 1000; 0 skips)")
    parser.add_argument("--mailboxes", type=int, default=5, help="mailboxes in the listed account (default 5, PLUS allows 25)")
    parser.add_argument("--per-minute", type=int, default=1_000_000_000,
                        help="QMAILING_TOKEN_REQUESTS_PER_MINUTE for the benchmark's server (default 1e9)")
    parser.add_argument("--breakdown-calls", type=int, default=300, help="calls per step of the in-process breakdown")
    parser.add_argument("--breakdown", action="store_true", help="print the in-process breakdown whatever the figures")
    parser.add_argument("--profile", action="store_true", help="also cProfile qmailing tools/calls in-process")
    parser.add_argument("--embedded", action="store_true",
                        help="allow running without DATABASE_URL/REDIS_URL (SQLite, in-process counters)")
    return parser.parse_args()


def configure_environment(args):
    """bench/api.py's environment, with the product's settings (bench/mcp_asgi adds the bare app)."""
    scratch = api_bench.configure_environment(args, name="mcp", settings_module="qmailing.settings")
    # The idle-session figure opens --sessions sessions with one token: lift the per-token and per-account
    # bounds (agent.mcp.sessions) for the benchmark's server, as the per-minute throttle is lifted.
    for name in ("QMAILING_MCP_SESSIONS_PER_TOKEN", "QMAILING_MCP_SESSIONS_PER_ACCOUNT",
                 "QMAILING_MCP_INITIALIZE_PER_MINUTE"):
        os.environ[name] = str(max(args.sessions, 1) * 2 + 1000)
    return scratch


# --- The server.

class Server(api_bench.Server):
    """daphne serving bench.mcp_asgi:application (qmailing.asgi + /bare-mcp), as `run_all` starts daphne."""

    def __init__(self, env, app="bench.mcp_asgi:application"):
        super().__init__(env, app=app)

    def rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def threads(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class PostgresCpu:
    """CPU seconds of the local PostgreSQL server: the postmaster, its live children and the reaped ones
    (short-lived backends: with CONN_MAX_AGE=0 each request opens its own). None when it is not local."""

    def __init__(self, connection):
        self.pid = None
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
            try:
                self.pid = int(self._stat(backend)[1])  # the backend's parent: the postmaster
                self._stat(self.pid)
            except (OSError, ValueError):
                self.pid = None  # not on this machine (or not visible)

    @staticmethod
    def _stat(pid):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # state, ppid, …

    def seconds(self):
        if self.pid is None:
            return None
        ticks = sum(int(value) for value in self._stat(self.pid)[11:15])  # utime stime cutime cstime
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = self._stat(entry)
                    if int(fields[1]) == self.pid:
                        ticks += int(fields[11]) + int(fields[12])
                except (OSError, ValueError, IndexError):
                    continue
        return ticks / os.sysconf("SC_CLK_TCK")


# --- The clients: raw JSON-RPC over one keep-alive connection each.

MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN,
               "io.modelcontextprotocol/clientInfo": {"name": "qmailing-bench", "version": "1"},
               "io.modelcontextprotocol/clientCapabilities": {}}


class McpClient:
    """One MCP client: one keep-alive HTTP connection; a session on the handshake versions."""

    def __init__(self, port, path, token, version):
        self.port, self.path, self.version = port, path, version
        self.headers = {"Accept": ACCEPT, "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.session = None
        self.reconnects = 0

    def post(self, message, headers=None):
        """(status, body bytes, response headers) of one POST, reconnecting once if the server closed the connection."""
        payload = json.dumps(message, separators=(",", ":")).encode()
        sent = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            try:
                self.conn.request("POST", self.path, payload, sent)
                response = self.conn.getresponse()
                return response.status, response.read(), response
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                if attempt == 2:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.reconnects += 1

    def open(self):
        """initialize + notifications/initialized on a handshake version (nothing to do on 2026-07-28)."""
        if self.version == MODERN:
            return
        status, body, response = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": self.version, "capabilities": {},
            "clientInfo": {"name": "qmailing-bench", "version": "1"}}})
        self.session = response.getheader("mcp-session-id")
        if status != 200 or not self.session or f'"protocolVersion":"{self.version}"'.encode() not in body:
            raise RuntimeError(f"initialize on {self.path} answered {status}: {body[:300]!r}")
        self.headers.update({"Mcp-Session-Id": self.session, "MCP-Protocol-Version": self.version})
        status, body, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status != 202:
            raise RuntimeError(f"notifications/initialized on {self.path} answered {status}: {body[:300]!r}")

    def call_tool(self, tool, number):
        """One tools/call: True when it answered 200 with a result that is not an error."""
        params = {"name": tool, "arguments": {}}
        headers = None
        if self.version == MODERN:
            params["_meta"] = MODERN_META
            headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}
        status, body, _ = self.post({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}, headers)
        # A JSON body (2026-07-28) or one SSE event (sessions); no JSON parsing, to keep the client cheap.
        return status == 200 and b'"result"' in body and b'"isError":false' in body, status, body

    def close(self, end_session=True):
        if self.session and end_session:
            try:
                self.conn.request("DELETE", self.path, headers=self.headers)
                self.conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
        self.conn.close()


def run_phase(*, port, target, version, token, calls, clients):
    """`calls` tools/call of `target`'s tool from `clients` threads, each one MCP client.

    Returns latencies (ms), wall seconds, failures (count, first body), reconnects, client CPU seconds.
    """
    _, path, tool = target
    counter = itertools.count()
    latencies, failures, reconnects = [], [0, None], [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    errors = []

    def client():
        try:
            mcp = McpClient(port, path, token, version)
            mcp.open()
        except Exception as exc:  # noqa: BLE001 — reported by the main thread
            errors.append(exc)
            start.wait()
            return
        mine, failed, first = [], 0, None
        start.wait()
        while (number := next(counter)) < calls:
            began = time.perf_counter()
            ok, status, body = mcp.call_tool(tool, number + 1)
            mine.append((time.perf_counter() - began) * 1000)
            if not ok:
                failed += 1
                first = first or (status, body[:300])
        mcp.close()
        with lock:
            latencies.extend(mine)
            failures[0] += failed
            failures[1] = failures[1] or first
            reconnects[0] += mcp.reconnects

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu_before, began = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return latencies, wall, failures, reconnects[0], time.process_time() - cpu_before


def open_idle_sessions(*, port, path, token, count, workers=8):
    """Open `count` sessions (initialize + notifications/initialized on 2025-06-18), left idle. Returns seconds."""
    counter = itertools.count()
    errors = []

    def worker():
        connection = McpClient(port, path, token, HANDSHAKE)
        try:
            while next(counter) < count:
                connection.headers.pop("Mcp-Session-Id", None)  # a new session on the same connection
                connection.headers.pop("MCP-Protocol-Version", None)
                connection.open()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        connection.close(end_session=False)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


# --- Where the time goes, in-process.

async def asgi_post(app, path, body, headers):
    """One POST through an ASGI app in this process (no HTTP, no daphne): (status, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", str(len(body)).encode())]
             + [(key.lower().encode(), value.encode()) for key, value in headers.items()]}
    delivered = False
    status, chunks = None, []

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects; the app returns when it has answered

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def modern_call(tool, token):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": {}, "_meta": MODERN_META}}).encode()
    headers = {"accept": ACCEPT, "content-type": "application/json", "authorization": f"Bearer {token}",
               "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
    return body, headers


def breakdown(*, token, calls, profile):
    """Each piece of a qmailing tools/call timed in-process, then whole calls through the ASGI app in-process."""
    from django.conf import settings
    from django.db import connection
    from django.db.backends.signals import connection_created

    from accounts.request_log import request_log_enqueue, request_log_write
    from agent.mcp import http as mcp_http
    from agent.mcp import tools
    from agent import gates, token_cache
    from agent.operations import registry

    operation = registry()["qmailing_list_mailboxes"]
    header = f"Bearer {token}"
    origin = "http://127.0.0.1:8000"
    actor = gates.authenticate(header, origin=origin)
    args = operation.input.model_validate({})
    body, headers = modern_call(operation.name, token)

    def timed(call):
        call()
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - started) * 1000 / calls

    print(f"\nwhere the time goes, in-process (mean of {calls} calls each; sync steps on one warm database "
          "connection in this process):")
    steps = [
        ("authenticate: token from the process's cache (agent.token_cache)",
         lambda: gates.authenticate(header, origin=origin)),
        ("meter: per-token minute counter (+ daily cap when the plan has one)",
         lambda: gates.meter(actor, headers={})),
        ("_metered_call: parse the JSON-RPC body to find the tool", lambda: mcp_http._metered_call(body)),
        ("run_tool: authorize + validate + operation + result + log row",
         lambda: tools.run_tool(operation=operation, actor=actor, arguments={})),
        ("  of which operation.run + model_dump (selector + output model)",
         lambda: operation.run(actor=actor, args=args).model_dump(mode="json")),
        ("  of which request_log_enqueue: the row into the buffer (written in batches)",
         lambda: request_log_enqueue(account=actor.account, token_id=actor.token.pk, operation=operation.name,
                                     status=200, duration_ms=1)),
        ("(not on the call's path) request_log_write: one INSERT (own commit)",
         lambda: request_log_write(account=actor.account, token_id=actor.token.pk, operation=operation.name,
                                   status=200, duration_ms=1)),
        ("(not on the call's path) a token cache miss: token + limit read",
         lambda: gates._read_token(token_cache.checksum_of(token))),
    ]
    results = {}
    for label, call in steps:
        results[label] = timed(call)
        print(f"  {label:<74} {results[label]:7.3f} ms")
    pieces = results[steps[0][0]] + results[steps[1][0]] + results[steps[2][0]] + results[steps[3][0]]
    print(f"  {'= product pieces (authenticate + meter + parse + run_tool)':<74} {pieces:7.3f} ms")

    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            steps[0][1]()
            steps[1][1]()
            steps[3][1]()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(f"\ncProfile of {calls} x (authenticate + meter + run_tool) in-process on a warm connection "
              "(top 30 by cumulative time):")
        print(out.getvalue())
    as_served = pieces
    if not settings.DATABASES["default"].get("CONN_MAX_AGE"):
        def reconnect():
            connection.close()
            connection.ensure_connection()

        def cold(call):
            connection.close()  # as in the server: each ORM step of a call opens its own
            return call()

        opening = timed(reconnect)
        print(f"  {'new database connection (CONN_MAX_AGE=0: the server opens 1 per call)':<74} {opening:7.3f} ms")
        for label, call in (steps[3],):
            print(f"  {'  first on a new connection: ' + label.split(':')[0] + ' (minus the connection)':<74} "
                  f"{timed(lambda: cold(call)) - opening:7.3f} ms")

        def served():  # a cached token needs no connection: authenticate runs on the event loop
            steps[0][1]()
            steps[1][1]()
            steps[2][1]()
            cold(steps[3][1])

        as_served = timed(served)
        print(f"  {'= product pieces as the server runs them (1 new connection)':<74} {as_served:7.3f} ms")
    connection.close()  # the in-process ASGI calls below use worker threads with their own connections

    import logging

    import bench.mcp_asgi as bench_asgi

    for name in ("mcp", "agent.mcp"):  # the in-process session managers' start/stop lines
        logging.getLogger(name).setLevel(logging.WARNING)

    opened = [0]

    def count_connection(**kwargs):
        opened[0] += 1

    async def whole():
        app = bench_asgi.application
        bare_body, bare_headers = modern_call(BARE[2], token)
        for path, data, sent in ((QMAILING[1], body, headers), (BARE[1], bare_body, bare_headers)):
            status, answer = await asgi_post(app, path, data, sent)
            if status != 200 or b'"isError":false' not in answer:
                raise RuntimeError(f"in-process {path} answered {status}: {answer[:300]!r}")

        async def mean(path, data, sent, n):
            started = time.perf_counter()
            for _ in range(n):
                await asgi_post(app, path, data, sent)
            return (time.perf_counter() - started) * 1000 / n

        connection_created.connect(count_connection)
        qm = await mean(QMAILING[1], body, headers, calls)
        connection_created.disconnect(count_connection)
        bare_ms = await mean(BARE[1], bare_body, bare_headers, calls)
        profiled = None
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await mean(QMAILING[1], body, headers, calls)
            profiler.disable()
            profiled = profiler
        await bench_asgi.mcp_endpoint.runtime.stop()
        await bench_asgi.bare_runtime.stop()
        return qm, bare_ms, profiled

    qm, bare_ms, profiled = asyncio.run(whole())
    print(f"  {'whole tools/call through the ASGI app in-process (no HTTP), 2026-07-28: qmailing':<74} {qm:7.3f} ms")
    print(f"  {'whole tools/call through the ASGI app in-process (no HTTP), 2026-07-28: bare':<74} {bare_ms:7.3f} ms")
    print(f"  {'  qmailing - bare: the product on top of the SDK':<74} {qm - bare_ms:7.3f} ms")
    print(f"  {'  qmailing - bare - product pieces as served: thread hops, glue':<74} "
          f"{qm - bare_ms - as_served:7.3f} ms")
    print(f"  {'database connections opened per qmailing call (in-process, worker threads)':<74} "
          f"{opened[0] / calls:7.2f}")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            print(f"  (log rows are committed in batches off the call's path, synchronous_commit="
                  f"{cursor.fetchone()[0]})")
        connection.close()
    if not settings.DATABASES["default"].get("CONN_MAX_AGE"):
        print("  (DATABASE_CONN_MAX_AGE=60 in the environment of bench/mcp.py gives the server persistent connections: "
              "a what-if for the new-connection cost)")
    if profiled is not None:
        out = io.StringIO()
        pstats.Stats(profiled, stream=out).sort_stats("cumulative").print_stats(25)
        print(f"\ncProfile of {calls} qmailing tools/calls through the ASGI app in-process (event loop thread only; "
              "the ORM steps run in worker threads and show as waits: this is the SDK's share) — top 25 by cumulative time:")
        print(out.getvalue())


# --- The run.

def main():
    args = parse_args()
    client_counts = [int(n) for n in args.clients.split(",")]
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    scratch = configure_environment(args)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from accounts.models import RequestLog

    server = None
    try:
        account, user, token, access_token = create_fixture(args.mailboxes)
        postgres = PostgresCpu(connection)
        connection.close()  # the server's connections only, while it is measured
        server = Server(dict(os.environ))

        for target in (QMAILING, BARE):
            for version in modes:
                mcp = McpClient(server.port, target[1], token, version)
                mcp.open()
                ok, status, body = mcp.call_tool(target[2], 1)
                mcp.close()
                if not ok:
                    server.fail(f"warm-up {target[0]} {version} answered {status}: {body[:400]!r}")
        rss_start = server.rss_kib()

        cores = os.cpu_count()
        database = f"{connection.vendor} ({settings.DATABASES['default']['NAME']})"
        counters = f"Redis ({settings.REDIS_URL})" if settings.REDIS_URL else "in-process memory (no REDIS_URL)"
        print(f"server: one daphne process on 127.0.0.1:{server.port} serving bench.mcp_asgi (qmailing.asgi with "
              f"/mcp, plus /bare-mcp), settings qmailing.settings, database {database}, "
              f"DATABASE_CONN_MAX_AGE={settings.DATABASES['default'].get('CONN_MAX_AGE', 0)}, "
              f"rate-limit counters in {counters}")
        print(f"qmailing: tools/call qmailing_list_mailboxes, account on plan {account.plan.code} (no daily cap), "
              f"{args.mailboxes} mailboxes listed; every gate, metering and the request-log row")
        print("bare: the SDK's MCPServer, one async tool returning a small constant dict, its streamable_http_app() "
              "(session manager started on the first request: daphne runs no lifespan)")
        print(f"throttle raised for this server: QMAILING_TOKEN_REQUESTS_PER_MINUTE={args.per_minute} (default 300); "
              "the gates still run and still count every call")
        services = " and ".join(filter(None, ["PostgreSQL" if connection.vendor == "postgresql" else "",
                                              "Redis" if settings.REDIS_URL else ""]))
        print(f"clients: threads in this process, raw JSON-RPC over one keep-alive http.client connection each; "
              f"{cores} CPU cores shared by clients, daphne{' and ' + services if services else ''}")
        print(f"modes: {', '.join(f'{m} (session-less)' if m == MODERN else f'{m} (one session per client)' for m in modes)}")
        load_start = Path("/proc/loadavg").read_text().split()[0]
        print(f"{args.calls} measured calls per phase after a warm-up; load average before: {load_start} "
              "(other processes on the machine change the figures)\n")

        results, warnings = {}, []
        qmailing_calls = 0
        print(f"{'':<9}{'mode':<12}{'clients':>8}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}"
              f"{'client CPU':>12}{'daphne CPU':>12}{'daphne/call':>13}{'PG/call':>10}")
        for version in modes:
            for clients in client_counts:
                for target in (QMAILING, BARE):
                    name = target[0]
                    warm = max(20, 3 * clients)
                    run_phase(port=server.port, target=target, version=version, token=token, calls=warm,
                              clients=clients)
                    server_before, pg_before = server.cpu_seconds(), postgres.seconds()
                    latencies, wall, failures, reconnects, client_cpu = run_phase(
                        port=server.port, target=target, version=version, token=token, calls=args.calls,
                        clients=clients)
                    server_cpu = server.cpu_seconds() - server_before
                    pg_cpu = None if pg_before is None else postgres.seconds() - pg_before
                    if name == "qmailing":
                        qmailing_calls += warm + args.calls
                    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
                    rate = len(latencies) / wall
                    results[(name, version, clients)] = (p50, p99, rate)
                    print(f"{name:<9}{version:<12}{clients:>8}{len(latencies):>7}{p50:>9.2f}{p99:>9.2f}{rate:>9.0f}"
                          f"{client_cpu / wall:>11.0%}c{server_cpu / wall:>11.0%}c"
                          f"{server_cpu * 1000 / len(latencies):>10.2f} ms"
                          + (f"{pg_cpu * 1000 / len(latencies):>7.2f} ms" if pg_cpu is not None else "      n/a"))
                    if failures[0]:
                        warnings.append(f"{name} {version} x {clients}: {failures[0]} calls did not answer a result "
                                        f"(first: {failures[1]!r}) — figures include them")
                    if reconnects:
                        warnings.append(f"{name} {version} x {clients}: the server closed {reconnects} keep-alive "
                                        "connections")
                    if client_cpu / wall > 0.5:
                        warnings.append(
                            f"{name} {version} x {clients}: the client process used {client_cpu / wall:.0%} of a core "
                            f"while daphne used {server_cpu / wall:.0%}, on {cores} cores shared with the database: "
                            "the client may hold the figures back; read its calls/s as a lower bound")
        print("(client/daphne CPU: CPU seconds per wall second of the phase, 100%c = one core busy; daphne/call and "
              "PG/call: CPU time of the daphne process and of the whole local PostgreSQL server, backends included, "
              "per measured call; other databases' work on that server counts too)")

        warm_ups = len(modes)  # the start-up check made one call per mode
        # The server writes its rows in batches (accounts.request_log, QMAILING_REQUEST_LOG_FLUSH_SECONDS): give
        # it a few intervals to write the last ones.
        waited = time.monotonic()
        while True:
            logged = RequestLog.objects.filter(account=account, operation="qmailing_list_mailboxes",
                                               status=200).count()
            if logged >= qmailing_calls + warm_ups or time.monotonic() - waited > 3 * settings.QMAILING_REQUEST_LOG_FLUSH_SECONDS + 5:
                break
            time.sleep(0.2)
        connection.close()
        print(f"request log: {logged} rows with status 200 for {qmailing_calls + warm_ups} qmailing calls"
              f"{'' if logged == qmailing_calls + warm_ups else ' — MISMATCH'} (the last written "
              f"{time.monotonic() - waited:.1f} s after the phases; rows are written in batches)")
        if settings.REDIS_URL:
            from core import ratelimit

            key = ratelimit._full_key(f"api:token:{access_token.pk}:minute")
            redis = ratelimit._redis_backend(settings.REDIS_URL).client
            print(f"Redis counter {key}: {int(redis.get(key) or 0)} calls in its current minute window "
                  f"(limit {args.per_minute}; earlier minutes' calls are in earlier windows)")

        print()
        missed = False
        top = max(client_counts)
        for version in modes:
            for clients in client_counts:
                (q50, _, qrate), (b50, _, brate) = (results[("qmailing", version, clients)],
                                                    results[("bare", version, clients)])
                ratio = qrate / brate
                met = ratio >= RATIO_TARGET
                missed |= not met
                print(f"{version}, {clients:>2} client(s): qmailing at {ratio:.0%} of bare's throughput "
                      f"({qrate:.0f} vs {brate:.0f} calls/s; target >= {RATIO_TARGET:.0%}): "
                      f"{'MET' if met else 'NOT MET'}; p50 {q50:.2f} vs {b50:.2f} ms (+{q50 - b50:.2f} ms)")
            q99 = results[("qmailing", version, top)][1]
            met = q99 < P99_TARGET_MS
            missed |= not met
            print(f"{version}, {top:>2} client(s): qmailing p99 {q99:.1f} ms (target < {P99_TARGET_MS:.0f} ms): "
                  f"{'MET' if met else 'NOT MET'}")
        print(f"(on this machine: {cores} CPU cores, one daphne process, which runs Python on one core at a time; "
              f"load average {load_start} before the phases, {Path('/proc/loadavg').read_text().split()[0]} after)")
        for warning in warnings:
            print(f"WARNING: {warning}")
        if warnings and any("did not answer" in warning for warning in warnings):
            errors = [line for line in server.output().splitlines() if "Error" in line or "Exception" in line]
            print("server errors (first 5 lines naming one):\n  " + "\n  ".join(errors[:5] or ["(none logged)"]))

        if args.sessions:
            print(f"\nmemory of idle sessions ({HANDSHAKE}: initialize + notifications/initialized, never closed; "
                  f"daphne's VmRSS; {rss_start / 1024:.1f} MiB after the warm-up, before the phases):")
            for target in (QMAILING, BARE):
                name, path, _ = target
                time.sleep(0.5)
                before, threads_before = server.rss_kib(), server.threads()
                seconds = open_idle_sessions(port=server.port, path=path, token=token, count=args.sessions)
                time.sleep(1.0)  # let the session tasks settle
                after, threads_after = server.rss_kib(), server.threads()
                print(f"  {name:<9} {args.sessions} sessions opened in {seconds:.1f} s: RSS {before / 1024:.1f} -> "
                      f"{after / 1024:.1f} MiB, +{(after - before) / 1024:.1f} MiB, "
                      f"{(after - before) / args.sessions:.1f} KiB per session (daphne threads {threads_before} -> "
                      f"{threads_after})")
            print(f"  (sessions end after QMAILING_MCP_SESSION_IDLE_SECONDS={settings.QMAILING_MCP_SESSION_IDLE_SECONDS} "
                  f"idle; at most QMAILING_MCP_MAX_SESSIONS={settings.QMAILING_MCP_MAX_SESSIONS} per process)")

        if missed or args.breakdown or args.profile:
            if missed:
                print("\na target is not met; the in-process breakdown follows.")
            breakdown(token=token, calls=args.breakdown_calls, profile=args.profile)
    finally:
        api_bench.clean_up(server, scratch)


if __name__ == "__main__":
    main()
