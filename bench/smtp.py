"""SMTP throughput: N client connections delivering over real sockets to the real inbound server process.

Usage: [DATABASE_URL=postgres://…] python bench/smtp.py [--messages 2000] [--connections 4]
Migrates the database named by the environment and makes one throwaway mailbox. The server is the project's
own SMTP entry, `manage.py run_smtp`, in a process of its own (as run_all starts it), with its DNS pointed at
a stub resolver on loopback (dnslib, the tests' tests/dnsserver.py) that publishes SPF, a DKIM key and a
DMARC policy for the senders' domain: every message is DKIM-signed, so SPF, DKIM and DMARC are all checked
for real and pass. Each client connection sends its share of the corpus (bench/ingest.py's ~20 KB
messages) one after another on one session; a message's latency is its MAIL, RCPT and DATA up to the
250. Prints msg/s, p50/p95/max latency, the server process's CPU per message and the load average, and
checks every message was stored once with an authentication verdict of pass. The account, its mail and
the temporary folders are deleted afterwards.
"""

import argparse
import importlib.util
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")
os.environ.setdefault("QMAILING_VAR_DIR", tempfile.mkdtemp(prefix="qmailing-smtp-bench-"))

SENDER_DOMAIN = "example.com"  # bench/ingest.py's corpus is From senderN@example.com
SELECTOR = "bench"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_seconds(pid):
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for_banner(port, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the SMTP server exited with {process.returncode}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the SMTP server did not answer in time")


def signed_corpus(count, private_key):
    import dkim

    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    ingest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ingest)

    messages = []
    for raw in ingest.corpus(count, seed=11):
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        signature = dkim.sign(raw, SELECTOR.encode(), SENDER_DOMAIN.encode(), private_key.encode(),
                              include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        messages.append(signature + raw)
    return messages


def deliver(port, recipient, messages, latencies, failures):
    """Send `messages` one after another on one SMTP session, appending each one's latency in seconds."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="mta.example.com", timeout=120) as client:
        client.ehlo("mta.example.com")
        for raw in messages:
            started = time.perf_counter()
            try:
                client.sendmail(f"bounces@{SENDER_DOMAIN}", [recipient], raw)
            except smtplib.SMTPException as exc:
                failures.append(repr(exc))
                continue
            latencies.append(time.perf_counter() - started)


def run_round(port, recipient, messages, connections):
    shares = [messages[index::connections] for index in range(connections)]
    latencies, failures = [], []
    threads = [threading.Thread(target=deliver, args=(port, recipient, share, latencies, failures)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=None, help="messages sent first, not timed (default messages/10, "
                                                                  "at most 50)")
    options = parser.parse_args()
    warmup = options.warmup if options.warmup is not None else min(50, max(options.connections, options.messages // 10))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.services import account_set_plan, account_signup
    from domains.keys import dkim_keypair
    from mailboxes.models import Email
    from tests.dnsserver import DnsServer

    call_command("migrate", verbosity=0)
    media = tempfile.mkdtemp(prefix="qmailing-smtp-media-")
    settings.MEDIA_ROOT = media
    private_key, public_key = dkim_keypair()
    dns = DnsServer()
    dns.start()
    dns.add(SENDER_DOMAIN, "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.add(f"{SELECTOR}._domainkey.{SENDER_DOMAIN}", "TXT", f"v=DKIM1; k=rsa; p={public_key}")
    dns.add(f"_dmarc.{SENDER_DOMAIN}", "TXT", "v=DMARC1; p=reject")
    user = account_signup(email=f"smtp-bench-{uuid.uuid4().hex[:12]}@example.org", password="bench horse battery 42")
    account = account_set_plan(account=user.account, plan_code="PRO_MAX")
    mailbox = account.mailboxes.get()
    messages = signed_corpus(warmup + options.messages, private_key)
    average = sum(map(len, messages)) // len(messages)
    port = _free_port()
    environment = {**os.environ, "QMAILING_DNS_RESOLVERS": f"127.0.0.1:{dns.port}", "QMAILING_DNS_TIMEOUT": "2",
                   "QMAILING_MEDIA_ROOT": media}
    server_log = tempfile.NamedTemporaryFile(prefix="qmailing-smtp-bench-", suffix=".log")  # its log, shown on failure
    server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "run_smtp", "--host", "127.0.0.1",
                               "--port", str(port)], env=environment, stdout=subprocess.DEVNULL, stderr=server_log)
    try:
        _wait_for_banner(port, server)
        print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}; {options.messages} messages "
              f"({average / 1024:.1f} KB on average, DKIM-signed) over {options.connections} connections, "
              f"{warmup} more first to warm up; stub DNS on 127.0.0.1:{dns.port}", flush=True)
        run_round(port, mailbox.address, messages[:warmup], options.connections)
        cpu_before, load_before = _cpu_seconds(server.pid), os.getloadavg()
        elapsed, latencies, failures = run_round(port, mailbox.address, messages[warmup:], options.connections)
        cpu = _cpu_seconds(server.pid) - cpu_before
        stored = Email.objects.filter(mailbox=mailbox).count()
        verdicts = {}
        for authentication in Email.objects.filter(mailbox=mailbox).values_list("authentication", flat=True):
            verdict = (authentication or {}).get("verdict", "not checked")
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        dns.stop()
        account.delete()
        user.delete()
        shutil.rmtree(media, ignore_errors=True)
    sent = len(latencies)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] if latencies else float("nan")
    print(f"accepted: {sent} of {options.messages}; stored: {stored} (warm-up included); "
          f"verdicts: {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}")
    print(f"throughput:        {sent / elapsed:8.1f} msg/s at {options.connections} connections")
    print(f"latency p50:       {statistics.median(latencies) * 1000:8.1f} ms" if latencies else "latency: none")
    print(f"latency p95:       {p95 * 1000:8.1f} ms   (max {latencies[-1] * 1000:.1f} ms)" if latencies else "")
    print(f"server CPU:        {cpu * 1000 / max(sent, 1):8.2f} ms per message (one process)")
    print(f"load average:      {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    problems = []
    if failures:
        problems.append(f"{len(failures)} refused or failed, first: {failures[0]}")
    if stored != warmup + options.messages:
        problems.append(f"{stored} stored for {warmup + options.messages} sent")
    if set(verdicts) != {"pass"}:
        problems.append(f"not every message passed authentication: {verdicts}")
    if problems:
        server_log.seek(0)
        errors = [line for line in server_log.read().decode(errors="replace").splitlines() if " INFO " not in line]
        print("\n".join(errors[-40:]), file=sys.stderr)
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
