"""Throughput of MCP `tools/call` and REST at 1, 2 and 4 web processes on one node, as `run_all --web-workers N`
starts them: one daphne on the port at 1; N daphnes behind the front (qmailing.front) above 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qm_bench_web REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/web_workers.py [--workers 1,2,4] [--clients 16] [--calls 1000]
    .venv/bin/python bench/web_workers.py --embedded    # SQLite in a temporary folder and in-process counters

The fixture, the clients and the calls are bench/mcp.py's and bench/api.py's (the same account, token and
`qmailing_list_mailboxes` with every gate, metering and the request-log row): for each process count it
measures `tools/call` session-less (2026-07-28), `tools/call` on sessions (2025-06-18: one per client, each
pinned by the front to the process that opened it) and `GET /api/v1/pub/mailboxes`, and prints calls/s, p50,
p99 and the speed-up over one process. Every call must succeed.

Read the figures with the load average printed beside them: the clients are threads of this process, on the
same cores as the web processes, PostgreSQL and Redis. On a 2-core machine more than two processes cannot
add throughput; the figures that decide how many processes a node runs come from a quiet machine with as
many cores as production's nodes (docs/operations/production.md: about one web process per core).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# `python bench/web_workers.py` puts bench/ first on sys.path, where bench/mcp.py would shadow the SDK's package.
sys.path[:] = [str(BASE_DIR)] + [p for p in sys.path if Path(p or ".").resolve() != BASE_DIR / "bench"]

from bench import api as api_bench  # noqa: E402
from bench import mcp as mcp_bench  # noqa: E402
from bench.api import create_fixture, percentile  # noqa: E402

REST_PATH = "/api/v1/pub/mailboxes"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="web process counts to measure (default 1,2,4)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in every phase (default 16)")
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per phase (default 1000)")
    parser.add_argument("--mailboxes", type=int, default=5, help="mailboxes in the listed account (default 5)")
    parser.add_argument("--per-minute", type=int, default=1_000_000_000,
                        help="QMAILING_TOKEN_REQUESTS_PER_MINUTE for the servers (default 1e9)")
    parser.add_argument("--embedded", action="store_true",
                        help="allow running without DATABASE_URL/REDIS_URL (SQLite, in-process counters)")
    return parser.parse_args()


class Node:
    """The web processes `run_all --web-workers N` starts (its own table of commands), on a free port."""

    def __init__(self, env, web_workers):
        from qmailing.management.commands.run_all import child_environment, web_table

        self.port = api_bench.free_port()
        env = {**env, "QMAILING_MCP_ALLOWED_PORTS": str(self.port), "QMAILING_BASE_URL": f"http://127.0.0.1:{self.port}"}
        self.log = tempfile.TemporaryFile()
        table = web_table("127.0.0.1", self.port, web_workers)
        self.procs = [subprocess.Popen(command, cwd=BASE_DIR, env=child_environment(env, name), stdout=self.log,
                                       stderr=subprocess.STDOUT, start_new_session=True) for name, command in table]
        # Ready when every daphne answers on its own port, and the front on the shared one.
        self.ports = [int(command[command.index("-p") + 1]) for name, command in table if name.startswith("web")]
        self.ports += [self.port] if web_workers > 1 else []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(proc.poll() is not None for proc in self.procs):
                self.fail("a web process exited")
            if self._ready():
                return
            time.sleep(0.2)
        self.fail("the web processes did not answer within 90 s")

    def _ready(self):
        try:
            return all(api_bench.fetch(port, "/accounts/login/", {})[0] == 200 for port in self.ports)
        except OSError:
            return False

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def fail(self, why):
        self.stop()
        sys.exit(f"{why}; output:\n{self.output()[-5000:]}")

    def cpu_seconds(self, procs=None):
        total = 0
        for proc in self.procs if procs is None else procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

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


def load_average():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(node, token, phase, calls, clients):
    """(latencies ms, wall s, failures, first failure) of one phase."""
    if phase == "rest":
        latencies, wall, statuses, _, _ = api_bench.run_phase(
            port=node.port, path=REST_PATH, headers={"Authorization": f"Bearer {token}"}, requests=calls,
            clients=clients)
        failed = sum(count for status, count in statuses.items() if status != 200)
        return latencies, wall, failed, None if not failed else statuses
    latencies, wall, failures, _, _ = mcp_bench.run_phase(
        port=node.port, target=mcp_bench.QMAILING, version=phase, token=token, calls=calls, clients=clients)
    return latencies, wall, failures[0], failures[1]


def main():
    args = parse_args()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    scratch = mcp_bench.configure_environment(argparse.Namespace(embedded=args.embedded, per_minute=args.per_minute,
                                                                 sessions=args.clients))
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    node = None
    try:
        _, _, token, _ = create_fixture(args.mailboxes)
        database = f"{connection.vendor} ({settings.DATABASES['default']['NAME']})"
        connection.close()
        counters = f"Redis ({settings.REDIS_URL})" if settings.REDIS_URL else "in-process memory (no REDIS_URL)"
        print(f"web processes on one node as `run_all --web-workers N` starts them (N > 1: N daphnes behind "
              f"qmailing.front); database {database}, rate-limit counters in {counters}")
        print(f"{args.clients} clients per phase (threads of this process, one keep-alive connection each), "
              f"{args.calls} measured calls per phase after a warm-up; {os.cpu_count()} CPU cores shared by all")
        print("phases: MCP tools/call qmailing_list_mailboxes session-less (2026-07-28) and on sessions (2025-06-18, "
              "one per client, pinned by the front); REST GET /api/v1/pub/mailboxes; every gate and log row\n")
        phases = [mcp_bench.MODERN, mcp_bench.HANDSHAKE, "rest"]
        labels = {mcp_bench.MODERN: "mcp 2026-07-28", mcp_bench.HANDSHAKE: "mcp 2025-06-18", "rest": "rest"}
        rates, failures = {}, []
        print(f"{'processes':>9}  {'phase':<16}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}{'x 1 proc':>10}"
              f"{'web CPU':>10}{'front/call':>12}   load average (1, 5, 15 min)")
        for count in counts:
            node = Node(dict(os.environ), count)
            for phase in phases:
                measure(node, token, phase, max(20, 3 * args.clients), args.clients)  # warm-up
                front = node.procs[-1:] if count > 1 else []  # web_table puts the front last
                cpu_before, front_before = node.cpu_seconds(), node.cpu_seconds(front)
                latencies, wall, failed, first = measure(node, token, phase, args.calls, args.clients)
                cpu, front_cpu = node.cpu_seconds() - cpu_before, node.cpu_seconds(front) - front_before
                rate = len(latencies) / wall
                rates[(count, phase)] = rate
                base = rates.get((counts[0], phase))
                speedup = f"{rate / base:9.2f}x" if base else f"{'':>10}"
                print(f"{count:>9}  {labels[phase]:<16}{len(latencies):>7}{statistics.median(latencies):>9.2f}"
                      f"{percentile(latencies, 0.99):>9.2f}{rate:>9.0f}{speedup}{cpu / wall:>9.0%}c"
                      + (f"{front_cpu * 1000 / len(latencies):>9.2f} ms" if front else f"{'-':>12}")
                      + f"   {load_average()}")
                if failed:
                    failures.append(f"{count} processes, {labels[phase]}: {failed} calls failed (first: {first!r})")
            node.stop()
            node = None
        print("(x 1 proc: calls/s over the first process count's; web CPU: CPU seconds of every web process and the "
              "front per wall second, 100%c = one core busy; front/call: the front's CPU per call)")
        for failure in failures:
            print(f"WARNING: {failure}")
        if failures:
            sys.exit(1)
    finally:
        api_bench.clean_up(node, scratch)


if __name__ == "__main__":
    main()
