"""Accepted means kept: faults injected into real processes on PostgreSQL + Redis while mail flows.

- the broker unreachable (a TCP proxy in front of Redis, cut) while the SMTP process ingests mail for a
  forwarding mailbox, and while a process sends mail out: every message is acknowledged (250 / the send
  returns), every committed row keeps its files, and the work is done once the broker is back;
- a Celery worker SIGKILLed while it hands sends to the relay: every send ends sent or uncertain, and no
  recipient gets a message twice;
- the SMTP process SIGKILLed under load, its senders retrying: every acknowledged message is stored exactly once;
- the database connections terminated under SMTP load: the same.
Each prints a line of the fault table: fault, load, acknowledged, stored, lost, duplicates, recovery time.
"""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mailboxes.models import Attachment, Email
from mailboxes.services import mailbox_create
from mailboxes.tasks import work_sweep
from tests.faults import SmtpServer, TcpProxy, Worker, child_env, redis_port, redis_url_through
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import confirmed_forwarding, eager_tasks  # noqa: F401 — fixture
from tests.qmailing.test_processes import _database_env, _wait

pytestmark = [pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _table(fault, load, acknowledged, stored, lost, duplicates, recovery):
    print(f"\nFAULT | {fault} | {load} | acknowledged {acknowledged} | stored {stored} | lost {lost} | "
          f"duplicates {duplicates} | recovery {recovery:.2f} s")


def _files_present(email):
    files = [(email.raw.storage, email.raw.name)]
    files += [(a.file.storage, a.file.name) for a in Attachment.objects.filter(email=email)]
    return all(storage.exists(name) for storage, name in files)


def _later(step=1):
    return timezone.now() + timedelta(seconds=(settings.QMAILING_STUCK_AFTER_SECONDS + 1) * step)


class Relay:
    """An outside SMTP relay on loopback that records every (recipient, Message-ID) it accepts, slowly if asked."""

    def __init__(self, delay=0.0):
        self.accepted = []
        self.delay = delay
        self.lock = threading.Lock()
        self.port = None
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        message_id = next((line.split(b":", 1)[1].strip() for line in envelope.content.splitlines()
                           if line.lower().startswith(b"message-id:")), b"")
        with self.lock:
            self.accepted += [(rcpt, message_id.decode()) for rcpt in envelope.rcpt_tos]
        return "250 OK"

    def start(self, settings_fixture):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        settings_fixture.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings_fixture.EMAIL_HOST, settings_fixture.EMAIL_PORT = "127.0.0.1", self.port
        settings_fixture.EMAIL_USE_TLS = settings_fixture.EMAIL_USE_SSL = False
        settings_fixture.EMAIL_HOST_USER = settings_fixture.EMAIL_HOST_PASSWORD = ""
        return self

    def env(self):
        return {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.port), "EMAIL_USE_TLS": "false", "EMAIL_USE_SSL": "false"}

    def duplicates(self):
        return len(self.accepted) - len(set(self.accepted))


@pytest.fixture
def relay(settings):
    relay = Relay().start(settings)
    yield relay
    relay.controller.stop()


@pytest.fixture
def forwarding_box(owner, verified_domain):
    box = mailbox_create(account=owner, domain=verified_domain, local_part="fwd",
                         forwarding_addresses=["far@outside.example"], forward_keep_copy=True)
    return confirmed_forwarding(box)


def test_broker_unreachable_during_smtp_ingest(forwarding_box, relay, eager_tasks, tmp_path):  # noqa: F811
    proxy = TcpProxy("127.0.0.1", redis_port())  # never up: the broker is unreachable for the SMTP process
    smtp = SmtpServer(child_env(_database_env(), REDIS_URL=redis_url_through(proxy)), tmp_path / "smtp.log").start()
    messages = [make_message(subject=f"While the broker is away {n}", to=forwarding_box.address,
                             message_id=f"away-{n}@example.com", attachments=[("notes.txt", "text/plain", f"note {n}".encode())]) for n in range(4)]
    try:
        acknowledged = [smtp.send("ada@example.com", [forwarding_box.address], raw) for raw in messages]
        assert all(acknowledged), (tmp_path / "smtp.log").read_text(errors="replace")[-3000:]
        stored = list(Email.objects.filter(mailbox=forwarding_box))
        assert len(stored) == 4
        assert all(_files_present(email) for email in stored)  # no error path deleted a committed row's files
        assert all(email.followup_due_at is not None for email in stored)  # the forwarding is recorded
        assert relay.accepted == []
        # A sender that never heard the 250 retries: acknowledged again, not stored twice.
        assert smtp.send("ada@example.com", [forwarding_box.address], messages[0])
        assert Email.objects.filter(mailbox=forwarding_box).count() == 4, list(
            Email.objects.filter(mailbox=forwarding_box).values_list("message_id", "delivery_digest", "direction"))
    finally:
        smtp.stop()
    began = time.monotonic()
    counts = work_sweep(now=_later())  # the broker is back: the sweep wakes every forward (eager here)
    recovery = time.monotonic() - began
    assert counts["forwards"] == 4
    assert {rcpt for rcpt, _ in relay.accepted} == {"far@outside.example"}
    assert len({message_id for _, message_id in relay.accepted}) == 4
    assert work_sweep(now=_later(2))["forwards"] == 0 and relay.duplicates() == 0 and len(relay.accepted) == 4
    assert not Email.objects.filter(followup_due_at__isnull=False).exists()
    _table("broker unreachable during SMTP ingest (forwarding mailbox)", "4 mails + 1 retry", 5, 4, 0, 0, recovery)


SEND_SCRIPT = """
import django; django.setup()
from accounts.models import Account
from mailboxes.models import Mailbox
from mailboxes.outbound.send import email_send
box = Mailbox.objects.get(pk="{box}")
ids = []
for n in range({count}):
    copy = email_send(account=box.account, mailbox=box, to=["client{{}}@outside.example".format(n)],
                      subject="Sent while the broker is away", text="hello",
                      attachments=[("terms.txt", "text/plain", b"the terms")])
    ids.append(str(copy.pk))
print(" ".join(ids))
"""


def test_broker_unreachable_during_send(owner, verified_domain, relay, eager_tasks, tmp_path):  # noqa: F811
    box = mailbox_create(account=owner, domain=verified_domain, local_part="sender")
    proxy = TcpProxy("127.0.0.1", redis_port())
    env = child_env(_database_env(), REDIS_URL=redis_url_through(proxy), **relay.env())
    done = subprocess.run([sys.executable, "-c", SEND_SCRIPT.format(box=box.pk, count=3)], cwd=settings.BASE_DIR,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]  # the sends returned: nothing raised to the caller
    ids = done.stdout.split()
    copies = list(Email.objects.filter(pk__in=ids))
    assert len(copies) == 3
    assert all(c.delivery_status == Email.Delivery.QUEUED and c.followup_due_at and _files_present(c) for c in copies)
    began = time.monotonic()
    assert work_sweep(now=_later())["deliveries"] == 3
    recovery = time.monotonic() - began
    assert {c.delivery_status for c in Email.objects.filter(pk__in=ids)} == {Email.Delivery.SENT}
    assert work_sweep(now=_later(2))["deliveries"] == 0
    assert len(relay.accepted) == 3 and relay.duplicates() == 0
    _table("broker unreachable during send", "3 sends", 3, 3, 0, 0, recovery)


def test_worker_killed_while_handing_off_sends_never_sends_twice(owner, verified_domain, settings, tmp_path):
    from mailboxes.outbound.send import email_send

    # The sweep below runs in real time, beside the second worker: short thresholds, still well above a hand-off.
    settings.QMAILING_STUCK_AFTER_SECONDS = settings.QMAILING_HANDOFF_STUCK_SECONDS = 3

    relay = Relay(delay=0.25).start(settings)
    box = mailbox_create(account=owner, domain=verified_domain, local_part="bulk")
    env = child_env(_database_env(), REDIS_URL=settings.REDIS_URL, **relay.env())
    count = 20
    copies = [email_send(account=owner, mailbox=box, to=[f"c{n}@outside.example"], subject=f"Offer {n}", text="hi")
              for n in range(count)]  # queued in Redis; no worker yet
    first = Worker("first", env, tmp_path / "first.log", concurrency=2)
    try:
        _wait(lambda: len(relay.accepted) >= 3, 60, "the first hand-offs")
        first.kill()  # SIGKILL mid-flow: one hand-off in the relay's DATA, prefetched tasks unacknowledged
    finally:
        first.stop()
    killed_at = time.monotonic()
    second = Worker("second", env, tmp_path / "second.log", concurrency=2)
    try:
        while Email.objects.filter(pk__in=[c.pk for c in copies], followup_due_at__isnull=False).exists():
            assert time.monotonic() - killed_at < 120, "the work was not done within two minutes"
            time.sleep(1)
            work_sweep()  # what beat runs every QMAILING_SWEEP_SECONDS
    finally:
        second.stop()
        relay.controller.stop()
    recovery = time.monotonic() - killed_at
    statuses = list(Email.objects.filter(pk__in=[c.pk for c in copies]).values_list("delivery_status", flat=True))
    uncertain = statuses.count(Email.Delivery.UNCERTAIN)
    assert set(statuses) <= {Email.Delivery.SENT, Email.Delivery.UNCERTAIN}
    assert uncertain <= 2  # at most the hand-offs the kill interrupted (two pool children)
    assert relay.duplicates() == 0  # at most once per recipient
    assert count - uncertain <= len(relay.accepted) <= count
    _table(f"worker SIGKILL while handing off sends ({uncertain} uncertain, {len(relay.accepted)} relayed)",
           f"{count} sends", count, count, 0, relay.duplicates(), recovery)


def _load(smtp, box, messages, results, stop_after=None):
    """Each message sent until acknowledged (a sender retries what got no 250), as a real MTA does."""
    for index, raw in enumerate(messages):
        deadline = time.monotonic() + 90
        while not smtp.send("ada@example.com", [box.address], raw, timeout=15):
            assert time.monotonic() < deadline, "a message was never acknowledged"
            time.sleep(0.3)
        results.append(index)


def _stored_once(box, messages):
    stored = list(Email.objects.filter(mailbox=box))
    by_id = {}
    for email in stored:
        by_id.setdefault(email.message_id, []).append(email)
    lost = sum(1 for raw in messages if _message_id(raw) not in by_id)
    duplicates = sum(len(copies) - 1 for copies in by_id.values())
    assert all(_files_present(email) for email in stored)
    return len(stored), lost, duplicates


def _message_id(raw):
    for line in raw.splitlines():
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().strip(b"<>").decode()
    raise AssertionError("no Message-ID")


# The kill reaches the SMTP process's connections only: killing every backend of the database also killed the
# ones this test process's other threads (a live server, the pool) held, and tests long after failed on them.
SMTP_APPLICATION_NAME = f"qm-fault-smtp-{os.getpid()}"


def _under_smtp_load(owner, tmp_path, name, fault):
    """30 messages sent to the SMTP process while `fault(smtp, acknowledged, sender)` strikes; the senders retry
    what got no 250. Every message is acknowledged and stored exactly once, with its file. Returns the counts."""
    box = owner.mailboxes.get()
    database = _database_env()
    if database.get("DATABASE_URL"):  # the SMTP process's connections carry a name of their own
        database["DATABASE_URL"] += f"?application_name={SMTP_APPLICATION_NAME}"
    smtp = SmtpServer(child_env(database, REDIS_URL=settings.REDIS_URL), tmp_path / "smtp.log").start()
    messages = [make_message(subject=f"{name} {n}", to=box.address, message_id=f"{name}-{n}@example.com")
                for n in range(30)]
    acknowledged = []
    sender = threading.Thread(target=_load, args=(smtp, box, messages, acknowledged))
    try:
        sender.start()
        recovery = fault(smtp, acknowledged, sender)
        sender.join(timeout=180)
    finally:
        smtp.stop()
    assert len(acknowledged) == len(messages)
    stored, lost, duplicates = _stored_once(box, messages)
    assert (stored, lost, duplicates) == (len(messages), 0, 0)
    return len(messages), len(acknowledged), stored, lost, duplicates, recovery


def test_smtp_process_killed_under_load_loses_nothing_and_stores_once(owner, tmp_path):
    def kill_and_restart(smtp, acknowledged, sender):
        _wait(lambda: len(acknowledged) >= 10, 60, "ten acknowledged messages")
        smtp.kill()
        killed_at = time.monotonic()
        smtp.start()  # on the same port; the senders retry what got no answer
        return time.monotonic() - killed_at

    load, *counts = _under_smtp_load(owner, tmp_path, "load", kill_and_restart)
    _table("SMTP process SIGKILL under load, senders retry", f"{load} mails", *counts)


def test_database_connections_terminated_under_smtp_load(owner, tmp_path):
    import psycopg

    def cut_connections(smtp, acknowledged, sender):
        database = connection.settings_dict
        with psycopg.connect(host=database["HOST"] or "127.0.0.1", port=database["PORT"] or 5432,
                             user=database["USER"] or "postgres", dbname=database["NAME"], autocommit=True) as killer:
            killed = 0
            for cut in range(5):
                _wait(lambda: len(acknowledged) >= 5 * (cut + 1) or not sender.is_alive(), 60, "more messages")
                killed += killer.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE datname = current_database() AND application_name = %s",
                                         [SMTP_APPLICATION_NAME]).fetchone()[0]
        assert killed, "no connection of the SMTP process was cut"
        began = time.monotonic()
        sender.join(timeout=180)
        return time.monotonic() - began

    load, *counts = _under_smtp_load(owner, tmp_path, "cut", cut_connections)
    _table("database connections terminated (5 cuts) under SMTP load", f"{load} mails", *counts)
