"""Webhook delivery by real Celery workers: deliveries per second to a local receiver with 1 and 2 worker processes,
and the time from an `email.received` event being written to its webhook arriving, at a steady 100 events/s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qm_bench_webhooks REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/webhooks.py [--events 2000] [--workers 1,2] [--rate 100] [--seconds 20]

The database must be empty (a fresh one: `bench/smoke` creates one per benchmark): the benchmark migrates it,
creates a PRO account and registers one webhook endpoint for `email.received` on a receiver in this process: a
ThreadingHTTPServer on loopback that answers 204 at once and records when each webhook-id first arrived
(QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS=127.0.0.1 lets plain http to loopback through the SSRF check, which still
runs at every attempt). The Redis db must be a spare one (not db 0); the tasks go to a queue of this run's own
(bench/webhooks_settings.py), deleted at the end with kombu's bindings of it.

For each worker count, it starts that many `celery -A qmailing worker --pool threads --concurrency 16` processes (as
`run_all` starts them; Redis broker, late acknowledgement, prefetch 1) and waits until each says it is ready, then:
- throughput: --events events published in one transaction (each makes its delivery in that transaction, as
  every event does; all are enqueued at its commit) and the time from the commit to the last arrival;
- latency: --rate events/s for --seconds, each published in a transaction of its own by `event_publish` with an
  `email.received` payload shaped like ingest's, on a fixed schedule; for each, the time from its row being
  written (created_at) and from its commit to its webhook arriving, p50/p95/max, and where that time goes,
  from the attempt rows the workers write (queue wait until a worker starts the attempt, the attempt until the
  request arrives).
Every request the receiver got is verified afterwards with the `standardwebhooks` package, and every delivery
must end `succeeded`. The figures share the machine's cores between this process (publisher and receiver), the
workers, PostgreSQL and Redis; the CPU each used is printed.
"""

import argparse
import http.server
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
# `python bench/webhooks.py` puts bench/ first on sys.path, where this file would shadow the `webhooks` app.
sys.path[:] = [str(BASE_DIR)] + [p for p in sys.path if Path(p or ".").resolve() != BASE_DIR / "bench"]

from bench.api import free_port, percentile  # noqa: E402
from bench.mcp import PostgresCpu  # noqa: E402

P95_TARGET_MS = 1000.0
TARGET_RATE = 100


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per throughput phase (default 2000)")
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma separated (default 1,2)")
    parser.add_argument("--rate", type=int, default=TARGET_RATE, help=f"events/s of the latency phase (default {TARGET_RATE})")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency phase in seconds (default 20)")
    parser.add_argument("--accounts", type=int, default=4,
                        help="accounts publishing, one endpoint and one publisher thread each (default 4): events of "
                             "one account serialise on its cursor row lock until commit")
    parser.add_argument("--breakdown-attempts", type=int, default=100,
                        help="attempts timed in-process for the breakdown (default 100)")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"],
                        help="the workers' pool (default threads, as run_all runs the webhooks worker)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="each worker's pool size (default 16, QMAILING_WEBHOOK_WORKER_THREADS)")
    return parser.parse_args()


def configure_environment():
    """Environment for this process and the workers, set before Django reads its settings."""
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not (database_url.startswith("postgres") and redis_url):
        sys.exit("bench/webhooks.py measures the production setup: set DATABASE_URL=postgres://…/<empty database> and "
                 "REDIS_URL=redis://…/<spare db>.")
    if urlsplit(redis_url).path.strip("/") in ("", "0"):
        sys.exit("bench/webhooks.py wants a spare Redis db, not db 0: e.g. REDIS_URL=redis://127.0.0.1:6379/12.")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.webhooks_settings"
    os.environ["QMAILING_BENCH_QUEUE"] = f"bench-webhooks-{os.getpid()}"
    os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory; production runs without it
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ["QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")]))


def create_fixture(accounts):
    """Migrate the empty database; `accounts` PRO accounts (each with the mailbox its sign-up makes)."""
    from django.core.management import call_command
    from django.db import connection

    existing = connection.introspection.table_names()
    if existing:
        sys.exit(f"The database is not empty ({len(existing)} tables, e.g. {existing[0]}): the benchmark starts from a "
                 "fresh one. Create an empty database for it (bench/smoke does).")
    call_command("migrate", verbosity=0)

    from accounts.services import account_set_plan, account_signup

    made = []
    for n in range(1, accounts + 1):
        user = account_signup(email=f"bench{n}@bench.example", password="bench password 12345", full_name=f"Bench {n}")
        made.append(account_set_plan(account=user.account, plan_code="PRO"))
    return made


# --- The receiver.

class Receiver:
    """Answers every POST 204 at once; keeps the first arrival time of each webhook-id and every request."""

    def __init__(self):
        self.arrivals = {}  # webhook-id -> time.time() of its first arrival
        self.requests = []  # (headers, body), for verification afterwards
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                self.send_response(204)
                self.end_headers()
                key = self.headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.arrivals.setdefault(key, arrived)
                    receiver.requests.append((self.path, dict(self.headers.items()), body.decode("utf-8")))

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, n):  # n: an account's number, or "probe" for the breakdown's bare POSTs
        return f"http://127.0.0.1:{self.port}/hooks/{n}"

    def arrived(self, ids):
        with self.lock:
            return sum(1 for i in ids if i in self.arrivals)

    def verify(self, secrets, start=0):
        """(verified, failed, duplicates) of the requests from `start` on, checked with the standardwebhooks package
        (soon after they arrived: it refuses timestamps more than 5 minutes old)."""
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        webhooks = {path: Webhook(secret) for path, secret in secrets.items()}
        with self.lock:
            requests = self.requests[start:]
        verified = failed = 0
        for path, headers, body in requests:
            if path not in webhooks:  # the breakdown's bare POSTs (/hooks/probe), not deliveries
                continue
            try:
                webhooks[path].verify(body, headers)
                verified += 1
            except WebhookVerificationError:
                failed += 1
        ids = [headers.get("webhook-id") or headers.get("Webhook-Id") for path, headers, _ in requests if path in webhooks]
        return verified, failed, len(ids) - len(set(ids))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- The workers.

class Workers:
    """`count` real `celery -A qmailing worker` processes (pool and size as asked), each in a process group of its own."""

    def __init__(self, count, pool, concurrency):
        self.concurrency = concurrency
        self.procs, self.logs = [], []
        for n in range(count):
            log = tempfile.NamedTemporaryFile(prefix=f"bench-webhooks-worker{n + 1}.", suffix=".log", delete=False)
            command = [sys.executable, "-m", "celery", "-A", "qmailing", "worker", "--pool", pool,
                       "--concurrency", str(self.concurrency),
                       "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
                       "--hostname", f"bench-webhooks-{os.getpid()}-{n + 1}@localhost"]
            self.procs.append(subprocess.Popen(command, cwd=BASE_DIR, env=dict(os.environ), stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
            self.logs.append(log)
        deadline = time.monotonic() + 60
        for proc, log in zip(self.procs, self.logs):
            while not self._ready(log):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail("a worker exited" if proc.poll() is not None else "a worker was not ready within 60 s")
                time.sleep(0.1)

    @staticmethod
    def _ready(log):
        return b" ready." in Path(log.name).read_bytes()

    def output(self):
        return "\n".join(f"--- {log.name}\n{Path(log.name).read_text(errors='replace')[-3000:]}" for log in self.logs)

    def fail(self, why):
        text = self.output()
        self.stop()
        sys.exit(f"{why}; their output:\n{text}")

    def cpu_seconds(self):
        """CPU seconds of every worker process and its pool children (live ones: they outlive the phases)."""
        pids = {proc.pid for proc in self.procs}
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) in pids or int(fields[1]) in pids:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()
            Path(log.name).unlink(missing_ok=True)


# --- Publishing.

def payload():
    """An `email.received` payload shaped like ingest's (mailboxes.inbound.ingest._event_payload)."""
    return {"email_id": str(uuid.uuid4()), "mailbox_id": str(uuid.uuid4()), "thread_id": str(uuid.uuid4()),
            "from": {"address": "alice@example.com", "name": "Alice Example"}, "subject": "Order 17 has shipped",
            "snippet": "Hi there, your order is on its way and should arrive on Thursday.", "folder": "inbox",
            "has_attachments": False}


def wait_for(receiver, ids, timeout, what):
    deadline = time.monotonic() + timeout
    while receiver.arrived(ids) < len(ids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def burst(accounts, count):
    """`count` events in one transaction, round robin over the accounts.

    Returns (their webhook-ids, the commit time, seconds from the commit until every task was enqueued).
    """
    from django.db import transaction

    from events.models import EventType
    from events.services import event_publish

    marks = {}
    ids = []
    with transaction.atomic():
        transaction.on_commit(lambda: marks.setdefault("commit", time.time()))  # runs first: before the enqueues
        for n in range(count):
            event = event_publish(account=accounts[n % len(accounts)], type=EventType.EMAIL_RECEIVED, payload=payload())
            ids.append(f"msg_{event.id.hex}")
    return ids, marks["commit"], time.time() - marks["commit"]


def steady(accounts, rate, seconds):
    """Events at `rate`/s for `seconds` on a fixed schedule, each in a transaction of its own; event n is
    published by thread n mod len(accounts) for its account (one account's events serialise on its row lock).

    Returns [(webhook-id, written, committed)] (epoch seconds), how late the latest one started, wall seconds.
    """
    from django.db import connection, transaction

    from events.models import EventType
    from events.services import event_publish

    count = int(rate * seconds)
    threads = len(accounts)
    records, late, errors = [], [0.0], []
    lock = threading.Lock()
    started = time.perf_counter() + 0.2

    def publisher(k):
        mine, worst = [], 0.0
        try:
            for n in range(k, count, threads):
                pause = started + n / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                else:
                    worst = max(worst, -pause)
                marks = {}
                with transaction.atomic():
                    transaction.on_commit(lambda: marks.setdefault("commit", time.time()))  # before the enqueue
                    event = event_publish(account=accounts[k], type=EventType.EMAIL_RECEIVED, payload=payload())
                mine.append((f"msg_{event.id.hex}", event.created_at.timestamp(), marks["commit"]))
        except Exception as exc:  # noqa: BLE001 — reported by the caller
            errors.append(exc)
        finally:
            connection.close()
        with lock:
            records.extend(mine)
            late[0] = max(late[0], worst)

    workers = [threading.Thread(target=publisher, args=(k,)) for k in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]
    return records, late[0], time.perf_counter() - started


def outcome(ids, settle=30):
    """{status: count} of these deliveries and how many attempts they took in all, once none is pending (a request
    arrives before its worker records the answer) or after `settle` seconds."""
    from django.db.models import Count, Sum

    from webhooks.models import WebhookDelivery

    events = [i.removeprefix("msg_") for i in ids]
    deadline = time.monotonic() + settle
    while True:
        rows = list(WebhookDelivery.objects.filter(event_id__in=events).values("status").annotate(
            n=Count("pk"), attempts=Sum("attempts")))
        if time.monotonic() > deadline or not any(row["status"] == WebhookDelivery.Status.PENDING for row in rows):
            break
        time.sleep(0.1)
    return {row["status"]: row["n"] for row in rows}, sum(row["attempts"] for row in rows)


def attempt_times(ids):
    """webhook-id -> (first attempt's start in epoch seconds, its duration_ms), from the rows the workers wrote."""
    from webhooks.models import WebhookAttempt

    events = [i.removeprefix("msg_") for i in ids]
    times = {}
    for event_id, started, duration in WebhookAttempt.objects.filter(
            delivery__event_id__in=events, number=1).values_list("delivery__event_id", "started_at", "duration_ms"):
        times[f"msg_{event_id.hex}"] = (started.timestamp(), duration)
    return times


def spread(samples):
    """p50 / p95 / max of millisecond samples, formatted."""
    if not samples:
        return "n/a"
    return (f"p50 {statistics.median(samples):7.1f}  p95 {percentile(samples, 0.95):7.1f}  "
            f"max {max(samples):7.1f} ms")


def load_average():
    return float(Path("/proc/loadavg").read_text().split()[0])


class BackendCpu:
    """CPU seconds of the PostgreSQL backends connected to this database (the workers' and this process's pooled
    connections), from /proc; None when the server is not on this machine. Other databases' load is left out."""

    def __init__(self, connection):
        self.connection = connection
        self.local = PostgresCpu(connection).pid is not None
        self.seen = {}

    def seconds(self):
        if not self.local:
            return None
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                self.seen[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                continue  # gone: its last reading stays
        return sum(self.seen.values())


def breakdown(*, accounts, attempts, receiver):
    """One delivery's pieces timed in this process (no Celery): what a worker runs for each task."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from webhooks import delivery
    from webhooks.models import WebhookDelivery, WebhookEndpoint
    from webhooks.ssrf import webhook_target
    from events.stream import announce
    from webhooks.tasks import webhook_deliver_task

    ids, _, enqueue_seconds = burst(accounts, attempts + 1)  # no worker runs now: the tasks stay queued
    deliveries = list(WebhookDelivery.objects.filter(event_id__in=[i.removeprefix("msg_") for i in ids])
                      .select_related("event", "endpoint"))
    endpoint = deliveries[0].endpoint
    target = webhook_target(receiver.url("probe"))  # the same receiver, on a path the verification leaves out
    body = delivery.webhook_body(deliveries[0].event)
    stamp = timezone.now()

    def timed(call, calls=attempts):
        call()
        began = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - began) * 1000 / calls

    print(f"\nwhere a delivery's time goes, in-process (mean of {attempts} each; load average now "
          f"{load_average():.1f} on {os.cpu_count()} cores):")
    rows = [
        ("after each commit: enqueue + push to waiters (mean over a one-transaction burst)",
         enqueue_seconds * 1000 / len(ids)),
        ("  enqueue alone: webhook_deliver_task.delay (kombu, Redis LPUSH)", timed(
            lambda: webhook_deliver_task.apply_async(args=["00000000-0000-0000-0000-000000000000"]))),
        ("  push alone: events.stream.announce (channel layer group_send via async_to_sync)", timed(
            lambda: announce(event=deliveries[0].event))),
        ("SSRF check (webhook_target; an IP literal here: no DNS lookup)", timed(lambda: webhook_target(endpoint.url))),
        ("webhook_body", timed(lambda: delivery.webhook_body(deliveries[0].event))),
        ("signature_header (decrypt the secret, HMAC)", timed(lambda: delivery.signature_header(
            endpoint, message_id="msg_bench", timestamp=stamp, body=body))),
        ("post: connect, POST, 204 (the receiver in this process)", timed(lambda: delivery.post(
            target, body=body, headers={"Content-Type": "application/json"}), calls=max(20, attempts // 2))),
    ]
    with connection.cursor() as cursor:
        rows.append(("one SELECT 1 round trip", timed(lambda: cursor.execute("SELECT 1"))))
        table = connection.ops.quote_name(WebhookEndpoint._meta.db_table)
        rows.append(("one autocommit UPDATE of one row (a commit: a WAL flush)", timed(lambda: cursor.execute(
            f"UPDATE {table} SET consecutive_failures = consecutive_failures WHERE id = %s", [endpoint.pk]))))
        cursor.execute("SHOW synchronous_commit")
        synchronous_commit = cursor.fetchone()[0]
    with CaptureQueriesContext(connection) as captured:
        delivery.delivery_attempt(deliveries[0].pk)
    statements = captured.captured_queries
    writes = sum(1 for q in statements if not q["sql"].lstrip().upper().startswith("SELECT"))
    pending = iter(d.pk for d in deliveries[1:])
    began, cpu = time.perf_counter(), time.process_time()
    for delivery_id in pending:
        delivery.delivery_attempt(delivery_id)
    whole = (time.perf_counter() - began) * 1000 / attempts
    whole_cpu = (time.process_time() - cpu) * 1000 / attempts
    rows.append((f"delivery_attempt, whole ({len(statements)} SQL statements, {writes} of them writes that "
                 "each commit)", whole))
    for label, ms in rows:
        print(f"  {label:<86} {ms:7.3f} ms")
    print(f"  {'  of which CPU in this process':<86} {whole_cpu:7.3f} ms")
    print(f"  (synchronous_commit={synchronous_commit}: each of the {writes} autocommit writes of an attempt waits for "
          "its own WAL flush; the task's Celery overhead — the message from Redis, the prefork parent handing it to "
          "its child, the ack — comes on top)")
    arrived = receiver.arrived(ids)
    return arrived


def main():
    args = parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    configure_environment()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from webhooks.services import webhook_register

    receiver = Receiver()
    workers = None
    verdicts = []
    load_before = load_average()
    try:
        accounts = create_fixture(args.accounts)
        secrets = {}
        for n, account in enumerate(accounts, 1):
            _, secrets[f"/hooks/{n}"] = webhook_register(account=account, url=receiver.url(n),
                                                          event_types=["email.received"])
        backends = BackendCpu(connection)
        cores = os.cpu_count()
        db = settings.DATABASES["default"]
        print(f"database: PostgreSQL ({db['NAME']}), connection pool {'on' if db.get('OPTIONS', {}).get('pool') else 'off'}; "
              f"broker: Redis ({settings.REDIS_URL}), queue {settings.CELERY_TASK_DEFAULT_QUEUE}; "
              f"acks_late={settings.CELERY_TASK_ACKS_LATE}, prefetch multiplier {settings.CELERY_WORKER_PREFETCH_MULTIPLIER}")
        print(f"workers: `celery -A qmailing worker --pool {args.pool} --concurrency {args.concurrency}` each; receiver: ThreadingHTTPServer "
              f"on 127.0.0.1:{receiver.port} in this process, 204 at once; {args.accounts} PRO accounts, one endpoint "
              "each for email.received")
        print(f"{cores} CPU cores shared by this process (publishers + receiver), the workers, PostgreSQL and Redis; "
              f"load average before the run {load_before:.1f}")
        print(f"throughput: {args.events} events published in one transaction, from its commit to the last arrival; "
              f"latency: {args.rate} events/s for {args.seconds:g} s, each its own transaction, {args.accounts} "
              "publisher threads\n")

        checked = [0, 0, 0, 0]  # verified, failed, repeats, requests seen
        for count in worker_counts:
            workers = Workers(count, args.pool, args.concurrency)
            # Warm-up: the first task of each worker pays for imports and its first connections.
            warm, _, _ = burst(accounts, 4 * count)
            if not wait_for(receiver, warm, 60, "warm-up"):
                workers.fail("the warm-up deliveries did not arrive within 60 s")

            # Throughput: a backlog, drained.
            cpu_workers, cpu_self, cpu_pg = workers.cpu_seconds(), time.process_time(), backends.seconds()
            ids, committed, enqueue_seconds = burst(accounts, args.events)
            if not wait_for(receiver, ids, max(120, args.events / 5), "throughput"):
                workers.fail(f"only {receiver.arrived(ids)} of {len(ids)} deliveries arrived")
            last = max(receiver.arrivals[i] for i in ids)
            wall = last - committed
            throughput = len(ids) / wall
            statuses, attempts = outcome(ids)
            worker_cpu = workers.cpu_seconds() - cpu_workers
            pg_cpu = (backends.seconds() - cpu_pg) if cpu_pg is not None else None
            print(f"{count} worker(s): {len(ids)} deliveries in {wall:.2f} s = {throughput:.0f} deliveries/s "
                  f"(enqueueing them all took {enqueue_seconds:.2f} s of it); statuses {statuses}, {attempts} attempts")
            print(f"  CPU per delivery: workers {worker_cpu / len(ids) * 1000:.1f} ms"
                  + (f", PostgreSQL backends of this database {pg_cpu / len(ids) * 1000:.1f} ms" if pg_cpu is not None else "")
                  + f", this process {(time.process_time() - cpu_self) / len(ids) * 1000:.1f} ms (publishing + "
                  f"receiving); the workers used {worker_cpu / wall:.0%} of a core per wall second")

            # Latency at a steady rate.
            records, late, publish_wall = steady(accounts, args.rate, args.seconds)
            ids = [record[0] for record in records]
            if not wait_for(receiver, ids, max(120, len(ids) / 5), "latency"):
                workers.fail(f"only {receiver.arrived(ids)} of {len(ids)} deliveries arrived")
            statuses, attempts = outcome(ids)
            times = attempt_times(ids)
            written = [(receiver.arrivals[i] - w) * 1000 for i, w, _ in records]
            from_commit = [(receiver.arrivals[i] - c) * 1000 for i, _, c in records]
            commit_part = [(c - w) * 1000 for _, w, c in records]
            queue_part = [(times[i][0] - c) * 1000 for i, _, c in records if i in times]
            attempt_part = [(receiver.arrivals[i] - times[i][0]) * 1000 for i, _, _ in records if i in times]
            durations = [float(times[i][1]) for i, _, _ in records if i in times and times[i][1] is not None]
            achieved = len(records) / publish_wall
            p95 = percentile(written, 0.95)
            met = p95 < P95_TARGET_MS
            print(f"  latency at {achieved:.0f} events/s ({len(records)} events; the publishers were at most "
                  f"{late * 1000:.0f} ms behind schedule); statuses {statuses}, {attempts} attempts")
            print(f"    written -> arrived:   {spread(written)}")
            print(f"    committed -> arrived: {spread(from_commit)}")
            print("    where it goes:")
            print(f"      written -> committed (the event's transaction):                   {spread(commit_part)}")
            print(f"      committed -> a worker starts the attempt (enqueue, Redis, queue): {spread(queue_part)}")
            print(f"      attempt start -> arrival (claim, attempt row, SSRF, sign, send):  {spread(attempt_part)}")
            print(f"      (the attempt's recorded duration_ms: SSRF, sign, POST, answer:   {spread(durations)})")
            verdict = (f"{count} worker(s): p95 written -> arrived {p95:.0f} ms at {achieved:.0f} events/s: target "
                       f"p95 < {P95_TARGET_MS:.0f} ms at {TARGET_RATE} events/s {'MET' if met else 'NOT MET'}")
            if not met and queue_part and percentile(queue_part, 0.95) > P95_TARGET_MS / 2:
                verdict += f"; {percentile(queue_part, 0.95):.0f} ms of it is waiting in the queue"
                if throughput < args.rate:
                    verdict += (f": {count} worker(s) deliver at most {throughput:.0f}/s (the backlog above), fewer "
                                f"than the {achieved:.0f}/s published, so the backlog grows for as long as they publish")
            if achieved < 0.95 * args.rate:
                verdict += f" (the publishers reached only {achieved:.0f} events/s, not {args.rate})"
            if args.rate < TARGET_RATE:
                verdict += f" (measured at {args.rate}/s, below the target's rate)"
            verdicts.append(verdict)
            workers.stop()
            workers = None
            verified, failed, duplicates = receiver.verify(secrets, checked[3])
            checked = [checked[0] + verified, checked[1] + failed, checked[2] + duplicates, len(receiver.requests)]
            print()

        start = len(receiver.requests)
        breakdown(accounts=accounts, attempts=args.breakdown_attempts, receiver=receiver)
        verified, failed, duplicates = receiver.verify(secrets, start)
        verified, failed, duplicates = checked[0] + verified, checked[1] + failed, checked[2] + duplicates
        print(f"\nreceiver: {verified} requests verified with standardwebhooks, {failed} failed verification, "
              f"{duplicates} repeats of a webhook-id")
        load_after = load_average()
        if max(load_before, load_after) > cores:
            print(f"WARNING: load average {load_before:.1f} before, {load_after:.1f} after, on {cores} cores: other "
                  "processes were using this machine, and the figures include their contention")
        for verdict in verdicts:
            print(verdict)
        if failed:
            sys.exit("some requests did not verify")
    finally:
        if workers is not None:
            workers.stop()
        receiver.stop()
        try:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL)
            queue = settings.CELERY_TASK_DEFAULT_QUEUE  # the queue and kombu's bindings of it (one set per run)
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
            client.close()
        except Exception as exc:  # noqa: BLE001 — best effort
            print(f"(could not delete the queue {settings.CELERY_TASK_DEFAULT_QUEUE}: {exc})")


if __name__ == "__main__":
    main()
