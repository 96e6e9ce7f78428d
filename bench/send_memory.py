"""Peak memory a send_email with large attachments adds to the web process, one at a time and several at once.

Usage: [DATABASE_URL=postgres://…/<empty database>] python bench/send_memory.py [--mb 24] [--files 4]
           [--parallel 6] [--breakdown] [--small]
The database must be empty (bench/smoke creates one per benchmark; without DATABASE_URL a fresh SQLite file in
a temporary folder): the benchmark migrates it and signs up a sender and a hosted recipient on PRO_MAX.
Each figure comes from a fresh child process, so one measurement cannot inherit another's heap:
  service  email_send with --mb MB of random bytes in --files attachments, which the caller already holds;
  tool     the qmailing_send_email operation (input model, base64 decoding, the handler) given the
           arguments a REST or MCP call has once its JSON is parsed: the base64 strings exist beforehand.
Each runs to an external recipient (the SENT copy only; delivery is a worker's task) and to an external plus
a hosted recipient (local delivery stores a second copy). A line shows tracemalloc's peak over the send
(Python allocations: every copy of the message and its attachments), the growth of ru_maxrss (the process's
peak resident set, allocator overhead included; measured on a send without tracing, and 0 when the send
stays under what the process had already used), both as MB and as a
multiple of the attachments' size, and the wall time of the untraced send. --breakdown adds the peak each
step adds while it runs. Then --parallel sends from one mailbox start at once in one process (threads, as
web requests run), each with its own attachments: ru_maxrss growth, the slowest send (they also queue on
their account's row lock), and how many were refused (429, retry later); first with
QMAILING_MAX_CONCURRENT_LARGE_SENDS as configured (QMAILING_LARGE_SEND_BYTES lowered below the send's size
if need be, so the cap applies), then with no cap.
--small is what bench/smoke runs: 4 MB in 2 attachments, 3 at once.
"""

import argparse
import base64
import gc
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")
os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory
# Stored mail (and, without DATABASE_URL, the SQLite file) goes to a folder of the run's own, deleted at the end.
SCRATCH = None
if not os.environ.get("QMAILING_VAR_DIR"):
    SCRATCH = os.environ["QMAILING_VAR_DIR"] = tempfile.mkdtemp(prefix="qmailing-bench-send-")

MB = 1024 * 1024
SENDER, RECIPIENT = "sender@bench.example", "recipient@bench.example"
EXTERNAL = "someone@elsewhere.example"
# Steps the breakdown times when the send path has them (names differ between versions of the code).
STEPS = [("mailboxes.outbound.send", name) for name in (
    "build_message", "dkim_sign", "signed_message", "email_ingest", "deliver_hosted")] + [
    ("mailboxes.inbound.ingest", "parse_message"), ("mailboxes.inbound.hosted", "parse_message"),
    ("mailboxes.store.operations", "decoded_attachments")]


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _setup():
    """Migrate the empty database; the sender's and the recipient's accounts (PRO_MAX: room for every send)."""
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.services import account_set_plan, account_signup

    call_command("migrate", verbosity=0)
    for address in (SENDER, RECIPIENT):
        user = account_signup(email=address, password="bench horse battery 42")
        account_set_plan(account=user.account, plan_code="PRO_MAX")


def _accounts():
    from accounts.models import Account

    sender = Account.objects.get(users__email=SENDER)
    recipient = Account.objects.get(users__email=RECIPIENT)
    return sender, sender.mailboxes.get(), recipient.mailboxes.get()


def _files(total, count, tag):
    size = total // count
    return [(f"{tag}-{index}.bin", "application/octet-stream", os.urandom(size)) for index in range(count)]


class _Breakdown:
    """tracemalloc's peak over a send, and (when steps are wrapped) the peak each step adds while it runs.

    A step resets tracemalloc's peak to measure its own; what it saw is carried up to its caller, so the
    outermost figure is still the peak of the whole send.
    """

    def __init__(self):
        self.rows, self.stack = [], []

    def start(self):
        tracemalloc.start()
        self.stack = [[tracemalloc.get_traced_memory()[0], 0]]
        tracemalloc.reset_peak()

    def stop(self):
        """The peak added since start()."""
        start, inner = self.stack[0]
        peak = max(tracemalloc.get_traced_memory()[1], inner)
        tracemalloc.stop()
        return peak - start

    def wrap(self, module_name, name):
        module = importlib.import_module(module_name)
        original = getattr(module, name, None)
        if not callable(original):
            return
        label = f"{module_name.rsplit('.', 1)[-1]}.{name}"

        def step(*args, **kwargs):
            current, peak = tracemalloc.get_traced_memory()
            self.stack[-1][1] = max(self.stack[-1][1], peak)
            self.stack.append([current, 0])
            tracemalloc.reset_peak()
            try:
                return original(*args, **kwargs)
            finally:
                start, inner = self.stack.pop()
                peak = max(tracemalloc.get_traced_memory()[1], inner)
                self.rows.append((len(self.stack) - 1, label, peak - start))
                self.stack[-1][1] = max(self.stack[-1][1], peak)

        setattr(module, name, step)


def child(path, hosted, total, count, breakdown):
    """One measured send in this fresh process; prints JSON."""
    import django

    django.setup()
    from mailboxes.outbound.send import email_send
    from agent.gates import Actor
    from agent.operations import registry

    account, mailbox, recipient = _accounts()
    to = [EXTERNAL] + ([recipient.address] if hosted else [])
    operation = registry()["qmailing_send_email"]
    actor = Actor(account=account, user=None, token=None, scopes=frozenset({"email:send"}))

    def prepared(tag):
        """A send ready to run, its inputs built beforehand as a request would have them."""
        if path == "service":
            files = _files(total, count, tag)
            return lambda: email_send(account=account, mailbox=mailbox, to=to, subject="Figures", text="See attached.",
                                      attachments=files)
        # Only the base64 text is kept, as a parsed request body holds it.
        arguments = {"mailbox_id": str(mailbox.id), "to": to, "subject": "Figures", "text": "See attached.",
                     "attachments": [{"filename": name, "content_type": kind, "content_base64": base64.b64encode(data).decode()}
                                     for name, kind, data in _files(total, count, tag)]}
        return lambda: operation.run(actor=actor, args=operation.input.model_validate(arguments))

    warm = _files(64 * 1024, 2, "warm")
    email_send(account=account, mailbox=mailbox, to=to, subject="Warm-up", text="x", attachments=warm)
    send = prepared("untraced")
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    send()
    seconds = time.perf_counter() - started
    rss = _rss_mb() - before
    del send
    send = prepared("traced")
    gc.collect()
    steps = _Breakdown()
    if breakdown:
        for module_name, name in STEPS:
            steps.wrap(module_name, name)
    steps.start()
    send()
    peak = steps.stop()
    print(json.dumps({"peak": peak, "rss": rss, "seconds": seconds, "steps": steps.rows}))


def child_parallel(senders, total, count):
    """`senders` service sends started together in threads of this fresh process; prints JSON."""
    import django

    django.setup()
    from django.db import connection

    from mailboxes.outbound.send import email_send
    from core.errors import RateLimited

    account, mailbox, _ = _accounts()
    email_send(account=account, mailbox=mailbox, to=[EXTERNAL], subject="Warm-up", text="x",
               attachments=_files(64 * 1024, 2, "warm"))
    connection.close()
    inputs = [_files(total, count, f"parallel-{index}") for index in range(senders)]
    barrier, results = threading.Barrier(senders), []

    def run(files):
        barrier.wait()
        started = time.perf_counter()
        try:
            email_send(account=account, mailbox=mailbox, to=[EXTERNAL], subject="Figures", text="See attached.",
                       attachments=files)
            outcome = "sent"
        except RateLimited:
            outcome = "refused"
        finally:
            connection.close()
        results.append((outcome, time.perf_counter() - started))

    gc.collect()
    before = _rss_mb()
    threads = [threading.Thread(target=run, args=(files,)) for files in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"rss": _rss_mb() - before, "results": results}))


def _run_child(*arguments, environment=None):
    answer = subprocess.run([sys.executable, __file__, "--child", *map(str, arguments)], capture_output=True,
                            text=True, env={**os.environ, **(environment or {})})
    if answer.returncode != 0:
        sys.exit(f"the measured child {arguments} failed:\n{answer.stderr[-3000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=24, help="attachments per send, in MB (default 24)")
    parser.add_argument("--files", type=int, default=4, help="attachments per send (default 4)")
    parser.add_argument("--parallel", type=int, default=6, help="sends started at once (default 6; 0 skips)")
    parser.add_argument("--breakdown", action="store_true", help="the peak each step of the send adds")
    parser.add_argument("--small", action="store_true", help="CI size: 4 MB in 2 attachments, 3 at once")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        if options.child[0] == "parallel":
            return child_parallel(*map(int, options.child[1:]))
        path, hosted, total, count, breakdown = options.child
        return child(path, hosted == "1", int(total), int(count), breakdown == "1")
    if options.small:
        options.mb, options.files, options.parallel = 4, 2, 3
    total = int(options.mb * MB) // options.files * options.files

    _setup()
    from django.conf import settings
    from django.db import connection

    connection.close()
    print(f"database: {connection.vendor}; {total / MB:.0f} MB of attachments in {options.files} files per send")
    print(f"{'path':8} {'recipients':18} {'traced peak MB':>14} {'x att.':>7} {'maxrss +MB':>11} {'x att.':>7} {'seconds':>8}")
    for path in ("service", "tool"):
        for hosted in (False, True):
            result = _run_child(path, int(hosted), total, options.files, int(options.breakdown))
            label = "external + hosted" if hosted else "external"
            print(f"{path:8} {label:18} {result['peak'] / MB:>14.1f} {result['peak'] / total:>7.2f} "
                  f"{result['rss']:>11.1f} {result['rss'] * MB / total:>7.2f} {result['seconds']:>8.2f}", flush=True)
            for depth, label, peak in result["steps"]:
                print(f"{'':10}{'  ' * depth}{label:40} +{peak / MB:7.1f} MB  ({peak / total:.2f} x)")
    if options.parallel:
        cap, threshold = settings.QMAILING_MAX_CONCURRENT_LARGE_SENDS, min(settings.QMAILING_LARGE_SEND_BYTES, total - 1)
        for label, environment in ((f"at most {cap} over {threshold} bytes at a time", {
                "QMAILING_LARGE_SEND_BYTES": str(threshold)}), ("no cap", {"QMAILING_MAX_CONCURRENT_LARGE_SENDS": "0"})):
            result = _run_child("parallel", options.parallel, total, options.files, environment=environment)
            outcomes = [outcome for outcome, _ in result["results"]]
            slowest = max(seconds for _, seconds in result["results"])
            print(f"{options.parallel} at once, {label}: maxrss +{result['rss']:.0f} MB "
                  f"({result['rss'] * MB / total:.1f} x one send's attachments), {outcomes.count('sent')} sent, "
                  f"{outcomes.count('refused')} refused, slowest {slowest:.1f} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        if SCRATCH:
            shutil.rmtree(SCRATCH, ignore_errors=True)
