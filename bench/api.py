"""Latency and throughput of the REST API over real HTTP: `GET /api/v1/pub/mailboxes` with every gate, beside a
plain Django view that returns the same JSON, on one daphne server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qm_bench_api REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/api.py [--requests 2000] [--clients 1,16] [--breakdown] [--profile]
    .venv/bin/python bench/api.py --embedded    # SQLite in a temporary folder and in-process counters

The database must be empty (a fresh one: `bench/smoke` creates one per benchmark): the benchmark migrates it
and creates a PLUS account (no daily cap), a few mailboxes and a real `qm_live_` token. Then it starts daphne
(what `run_all` starts) on a free loopback port with bench/api_settings.py, which serves the product's URLs
plus `/bench/plain/mailboxes` (bench/api_urls.py), and calls it from client threads, one keep-alive HTTP
connection each (http.client: a real HTTP client that costs the client process little CPU).

Gated calls run everything a real call runs: the token looked up by its checksum, the throttle and daily-cap
counters (Redis with REDIS_URL), plan and scope gates, DRF, the pydantic models and the request-log row.
The per-token throttle (QMAILING_TOKEN_REQUESTS_PER_MINUTE, 300 by default) is raised for the server, or every
call past the 300th would be a 429; the counter is still incremented on every call. Every phase must answer
200 to every request.

Prints requests, p50, p99 and requests/s for {gated, plain} x {1, 16 clients}, the gated/plain ratio and the
difference at p50, how much CPU the client and the server used (the clients share the machine's cores with
daphne, PostgreSQL and Redis), and, when the gated call costs more than 3 ms over the plain one at p50 (or with
--breakdown), where that time goes, measured in-process.
"""

import argparse
import cProfile
import http.client
import io
import itertools
import json
import math
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
GATED_PATH = "/api/v1/pub/mailboxes"
PLAIN_PATH = "/bench/plain/mailboxes"  # bench/api_urls.PLAIN_PATH
OVERHEAD_BUDGET_MS = 3.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per phase (default 2000)")
    parser.add_argument("--clients", default="1,16", help="concurrent clients per phase, comma separated (default 1,16)")
    parser.add_argument("--mailboxes", type=int, default=5, help="mailboxes in the listed account (default 5, PLUS allows 25)")
    parser.add_argument("--per-minute", type=int, default=1_000_000_000,
                        help="QMAILING_TOKEN_REQUESTS_PER_MINUTE for the benchmark's server (default 1e9)")
    parser.add_argument("--breakdown-calls", type=int, default=500, help="calls per step of the in-process breakdown")
    parser.add_argument("--breakdown", action="store_true", help="print the in-process breakdown whatever the overhead")
    parser.add_argument("--profile", action="store_true", help="also cProfile gated requests in-process")
    parser.add_argument("--embedded", action="store_true",
                        help="allow running without DATABASE_URL/REDIS_URL (SQLite, in-process counters)")
    return parser.parse_args()


def configure_environment(args, *, name="api", settings_module="bench.api_settings"):
    """Environment for this process and the server, set before Django reads its settings (bench/api.py, bench/mcp.py)."""
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not args.embedded and not (database_url.startswith("postgres") and redis_url):
        sys.exit(f"bench/{name}.py measures the production setup: set DATABASE_URL=postgres://…/<empty database> and "
                 "REDIS_URL=redis://…/<spare db>, or pass --embedded for SQLite and in-process counters.")
    scratch = None
    if not database_url:
        scratch = tempfile.mkdtemp(prefix=f"qmailing-bench-{name}.")
        os.environ["QMAILING_VAR_DIR"] = scratch  # a fresh SQLite file
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory; production runs without it
    os.environ["QMAILING_TOKEN_REQUESTS_PER_MINUTE"] = str(args.per_minute)
    # Our own counters: a fresh database starts token ids at 1 again, and another run may share the Redis db.
    os.environ["QMAILING_RATELIMIT_KEY_PREFIX"] = f"qmailing:bench-{name}:{os.getpid()}:"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")]))
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    return scratch


def clean_up(server, scratch):
    """Stop the server, drop this run's rate-limit counters from Redis and the scratch folder (both benchmarks)."""
    from django.conf import settings

    if server is not None:
        server.stop()
    if settings.REDIS_URL:
        from core import ratelimit

        redis = ratelimit._redis_backend(settings.REDIS_URL).client
        for key in redis.scan_iter(match=f"{settings.QMAILING_RATELIMIT_KEY_PREFIX}*"):
            redis.delete(key)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def create_fixture(mailboxes):
    """Migrate the empty database; a PLUS account with `mailboxes` mailboxes and a token with every scope."""
    from django.core.management import call_command
    from django.db import connection

    existing = [t for t in connection.introspection.table_names() if not t.startswith("bench_")]
    if existing:
        sys.exit(f"The database is not empty ({len(existing)} tables, e.g. {existing[0]}): the benchmark starts from a "
                 "fresh one. Create an empty database for it (bench/smoke does).")
    call_command("migrate", verbosity=0)

    from accounts.scopes import SCOPES
    from accounts.services import account_set_plan, account_signup
    from accounts.tokens import token_issue
    from domains.services import shared_domain_get
    from mailboxes.services import mailbox_create

    user = account_signup(email="bench@bench.example", password="bench password 12345", full_name="Bench")
    account = account_set_plan(account=user.account, plan_code="PLUS")
    shared = shared_domain_get()
    for n in range(1, mailboxes):
        mailbox_create(account=account, domain=shared, local_part=f"bench-api-{n}", display_name=f"Bench {n}")
    token, access_token = token_issue(account=account, user=user, client="Bench", scopes=" ".join(SCOPES))
    return account, user, token, access_token


# --- The server.

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """daphne serving qmailing.asgi:application with the benchmark's settings, as `run_all` starts it."""

    def __init__(self, env, app="qmailing.asgi:application"):
        self.port = free_port()
        env = {**env, "QMAILING_MCP_ALLOWED_PORTS": str(self.port)}  # the MCP Host check is exact, port included
        self.log = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), app]
        self.proc = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"daphne exited with code {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.fail("daphne did not listen within 60 s")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def fail(self, why):
        self.stop()
        sys.exit(f"{why}; its output:\n{self.output()[-5000:]}")

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --- The clients.

def fetch(port, path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_phase(*, port, path, headers, requests, clients):
    """`requests` GETs of `path` from `clients` threads, one keep-alive connection each.

    Returns latencies (ms), wall seconds, statuses {status: count}, reconnects, client CPU seconds.
    """
    counter = itertools.count()
    latencies, statuses, reconnects = [], {}, [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        mine, seen = [], {}
        start.wait()
        while next(counter) < requests:
            began = time.perf_counter()
            for attempt in (1, 2):
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                    if attempt == 2:
                        raise
                    conn.close()  # the server closed the keep-alive connection: open another, count it
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    with lock:
                        reconnects[0] += 1
            mine.append((time.perf_counter() - began) * 1000)
            seen[response.status] = seen.get(response.status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu_before, began = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return latencies, wall, statuses, reconnects[0], time.process_time() - cpu_before


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# --- Where the gated call's time goes, in-process.

def breakdown(*, token, account, calls, profile):
    from django.conf import settings
    from django.db import close_old_connections, connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.renderers import JSONRenderer

    from accounts.request_log import request_log_enqueue, request_log_write
    from mailboxes.operations import MailboxPage
    from mailboxes.selectors import mailbox_page
    from agent import gates
    from agent.operations import PageInput, registry

    operation = registry()["qmailing_list_mailboxes"]
    header = f"Bearer {token}"
    actor = gates.authenticate(header)
    args = operation.input.model_validate({})
    result = operation.run(actor=actor, args=args)

    def timed(call):
        call()
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - started) * 1000 / calls

    client = Client()
    auth = {"HTTP_AUTHORIZATION": header}
    steps = [
        ("authenticate: token from the process's cache (agent.token_cache)", lambda: gates.authenticate(header)),
        ("meter: per-token counter (+ daily cap when the plan has one)", lambda: gates.meter(actor, headers={})),
        ("authorize: plan and scope gates", lambda: gates.authorize(actor, operation)),
        ("input: pydantic PageInput from the query string", lambda: operation.input.model_validate({})),
        ("operation.run: selector + output model", lambda: operation.run(actor=actor, args=args)),
        ("serialise: model_dump + DRF JSONRenderer", lambda: JSONRenderer().render(result.model_dump(mode="json"))),
        ("request_log_enqueue: the row into the buffer (written in batches)", lambda: request_log_enqueue(
            account=actor.account, token_id=actor.token.pk, operation=operation.name, status=200, duration_ms=1)),
        ("plain: selector + MailboxPage + model_dump", lambda: MailboxPage.model_validate(
            mailbox_page(account=account, cursor=None, limit=PageInput().limit)).model_dump(mode="json")),
    ]
    print(f"\nwhere the time goes, in-process (mean of {calls} calls each, one warm database connection):")
    results = {}
    for label, call in steps:
        results[label] = timed(call)
        print(f"  {label:<70} {results[label]:7.3f} ms")
    gate_sum = sum(results[label] for label, _ in steps[:3]) + results[steps[6][0]]
    print(f"  {'= gates + log row (authenticate + meter + authorize + log)':<70} {gate_sum:7.3f} ms")

    written = timed(lambda: request_log_write(
        account=actor.account, token_id=actor.token.pk, operation=operation.name, status=200, duration_ms=1))
    print(f"  {'(not on the call path) request_log_write: one INSERT':<70} {written:7.3f} ms")

    gated_full = timed(lambda: client.get(GATED_PATH, **auth))
    plain_full = timed(lambda: client.get(PLAIN_PATH))
    print(f"  {'whole request through Django (test client, no HTTP): gated':<70} {gated_full:7.3f} ms")
    print(f"  {'whole request through Django (test client, no HTTP): plain':<70} {plain_full:7.3f} ms")
    rest = gated_full - plain_full - gate_sum
    print(f"  {'  gated - plain - (gates + log row): DRF, input, output model, headers':<70} {rest:7.3f} ms")
    queries = {}
    for name, call in (("gated", lambda: client.get(GATED_PATH, **auth)), ("plain", lambda: client.get(PLAIN_PATH))):
        with CaptureQueriesContext(connection) as captured:
            call()
        queries[name] = len(captured.captured_queries)
    print(f"  {'SQL statements per request':<70} gated {queries['gated']}, plain {queries['plain']}")
    if not settings.DATABASES["default"].get("CONN_MAX_AGE"):
        def reconnect():
            close_old_connections()
            connection.close()
            connection.ensure_connection()

        def cold(call):
            connection.close()  # as in the server: a new connection (and PostgreSQL backend) per request
            call()

        print(f"  {'new database connection (CONN_MAX_AGE=0: one per request, both views)':<70} "
              f"{timed(reconnect):7.3f} ms")
        cold_gated = timed(lambda: cold(lambda: client.get(GATED_PATH, **auth)))
        cold_plain = timed(lambda: cold(lambda: client.get(PLAIN_PATH)))
        print(f"  {'whole request on a new connection, as the server runs it: gated':<70} {cold_gated:7.3f} ms")
        print(f"  {'whole request on a new connection, as the server runs it: plain':<70} {cold_plain:7.3f} ms")
        print(f"  {'  gated - plain on new connections (a new backend reads more tables)':<70} "
              f"{cold_gated - cold_plain:7.3f} ms")
        opening = timed(reconnect)
        for label, call in (steps[0], steps[4], steps[6], steps[7]):
            print(f"  {'  first on a new connection: ' + label.split(':')[0]:<70} "
                  f"{timed(lambda: cold(call)) - opening:7.3f} ms")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            print(f"  (log rows are committed in batches off the call's path: no gated call waits for a WAL flush; "
                  f"synchronous_commit={cursor.fetchone()[0]})")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            client.get(GATED_PATH, **auth)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(f"\ncProfile of {calls} gated requests in-process (top 25 by cumulative time):")
        print(out.getvalue())


def main():
    args = parse_args()
    client_counts = [int(n) for n in args.clients.split(",")]
    scratch = configure_environment(args)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    server = None
    try:
        account, user, token, access_token = create_fixture(args.mailboxes)
        env = dict(os.environ, QMAILING_BENCH_ACCOUNT_ID=str(account.pk))
        os.environ["QMAILING_BENCH_ACCOUNT_ID"] = str(account.pk)
        connection.close()  # the server's connections only, while it is measured
        server = Server(env)

        auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        plain = {"Accept": "application/json"}
        gated_status, gated_body = fetch(server.port, GATED_PATH, auth)
        plain_status, plain_body = fetch(server.port, PLAIN_PATH, plain)
        if gated_status != 200 or plain_status != 200:
            server.fail(f"warm-up answers {gated_status} (gated) and {plain_status} (plain), not 200: "
                        f"{gated_body[:300]!r} {plain_body[:300]!r}")
        same = json.loads(gated_body) == json.loads(plain_body)
        items = len(json.loads(gated_body)["items"])

        cores = os.cpu_count()
        database = f"{connection.vendor} ({settings.DATABASES['default']['NAME']})"
        counters = f"Redis ({settings.REDIS_URL})" if settings.REDIS_URL else "in-process memory (no REDIS_URL)"
        print(f"server: one daphne process on 127.0.0.1:{server.port} (qmailing.asgi, settings bench.api_settings), "
              f"database {database}, DATABASE_CONN_MAX_AGE={settings.DATABASES['default'].get('CONN_MAX_AGE', 0)}, "
              f"rate-limit counters in {counters}")
        print(f"account on plan {account.plan.code} (no daily cap), {items} mailboxes listed; gated body "
              f"{len(gated_body)} bytes, plain body {len(plain_body)} bytes, same JSON: {'yes' if same else 'NO'}")
        print(f"throttle raised for this server: QMAILING_TOKEN_REQUESTS_PER_MINUTE={args.per_minute} (default 300); "
              "the gates still run and still count every call")
        services = " and ".join(filter(None, ["PostgreSQL" if connection.vendor == "postgresql" else "",
                                              "Redis" if settings.REDIS_URL else ""]))
        print(f"clients: threads in this process, one keep-alive http.client connection each; {cores} CPU cores "
              f"shared by clients, daphne{' and ' + services if services else ''}")
        print(f"{args.requests} measured requests per phase after a warm-up\n")

        results = {}
        warnings = []
        print(f"{'':<7}{'clients':>8}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
              f"{'client CPU':>12}{'daphne CPU':>12}")
        for clients in client_counts:
            for name, path, headers in (("gated", GATED_PATH, auth), ("plain", PLAIN_PATH, plain)):
                run_phase(port=server.port, path=path, headers=headers, requests=max(20, 3 * clients), clients=clients)
                server_before = server.cpu_seconds()
                latencies, wall, statuses, reconnects, client_cpu = run_phase(
                    port=server.port, path=path, headers=headers, requests=args.requests, clients=clients)
                server_cpu = server.cpu_seconds() - server_before
                p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
                rate = len(latencies) / wall
                results[(name, clients)] = (p50, p99, rate)
                print(f"{name:<7}{clients:>8}{len(latencies):>10}{p50:>9.2f}{p99:>9.2f}{rate:>9.0f}"
                      f"{client_cpu / wall:>11.0%}c{server_cpu / wall:>11.0%}c")
                if set(statuses) != {200}:
                    warnings.append(f"{name} x {clients}: answers {statuses}, not all 200 — figures include refusals")
                if reconnects:
                    warnings.append(f"{name} x {clients}: the server closed {reconnects} keep-alive connections")
                if client_cpu / wall > 0.5:
                    warnings.append(
                        f"{name} x {clients}: the client process used {client_cpu / wall:.0%} of a core while daphne "
                        f"used {server_cpu / wall:.0%}, on {cores} cores shared with the database: the client "
                        "may hold the figures back; read its req/s as a lower bound")
        print("(client/daphne CPU: CPU seconds per wall second of the phase; 100%c = one core busy)")

        print()
        for clients in client_counts:
            (g50, g99, grate), (p50, p99, prate) = results[("gated", clients)], results[("plain", clients)]
            diff = g50 - p50
            print(f"{clients:>2} client(s): gated/plain at p50 {g50 / p50:.2f}x, +{diff:.2f} ms per call "
                  f"(p99 +{g99 - p99:.2f} ms; throughput {grate / prate:.0%} of plain)")
        for clients in client_counts:
            if clients > 1:
                g50, _, grate = results[("gated", clients)]
                print(f"{clients} clients: {clients} / req/s = {clients / grate * 1000:.0f} ms against a p50 of {g50:.0f} ms "
                      "(gated): the requests queue for the one daphne process, which runs Python on at most one core "
                      "at a time (GIL), however many request threads it has")
        for warning in warnings:
            print(f"WARNING: {warning}")
        if any("not all 200" in warning for warning in warnings):
            errors = [line for line in server.output().splitlines() if "Error" in line or "Exception" in line]
            print("server errors (first 5 lines naming one):\n  " + "\n  ".join(errors[:5] or ["(none logged)"]))

        if settings.REDIS_URL:
            from core import ratelimit

            key = ratelimit._full_key(f"api:token:{access_token.pk}:minute")
            redis = ratelimit._redis_backend(settings.REDIS_URL).client
            print(f"\nRedis counter {key}: {int(redis.get(key) or 0)} calls in its current minute window "
                  f"(limit {args.per_minute})")

        first = client_counts[0]
        over = results[("gated", first)][0] - results[("plain", first)][0]
        if over > OVERHEAD_BUDGET_MS or args.breakdown or args.profile:
            if over > OVERHEAD_BUDGET_MS:
                print(f"\nthe gated call costs {over:.2f} ms over the plain one at p50 with {first} client(s), more than "
                      f"{OVERHEAD_BUDGET_MS:.0f} ms:")
            breakdown(token=token, account=account, calls=args.breakdown_calls, profile=args.profile)
        else:
            print(f"\nthe gated call costs {over:.2f} ms over the plain one at p50 with {first} client(s), within "
                  f"{OVERHEAD_BUDGET_MS:.0f} ms (--breakdown shows where it goes)")
    finally:
        clean_up(server, scratch)


if __name__ == "__main__":
    main()
