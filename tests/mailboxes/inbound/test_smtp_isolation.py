"""One client can never hold up another: attacked over real SMTP, against the real server."""

import smtplib
import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import Account
from mailboxes.inbound.extraction import PDF_LIMITS, attachments_extract
from mailboxes.inbound.smtp import smtp_controller
from mailboxes.models import Email, Extraction
from tests.mailboxes.inbound.pdfs import operator_flood_pdf
from tests.mailboxes.inbound_helpers import make_message
from tests.faults import free_port as _free_port
from tests.timing import wait_until, within

# The server's threads must see committed rows; the seeded plans are restored afterwards.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CAP = 64 * 1024


def _wait_for(condition, seconds=3):
    wait_until(condition, seconds, "the server settled", interval=0.01)


@pytest.fixture
def start_server(settings):
    """start_server(**settings) → a started server with these QMAILING_SMTP_* settings, stopped after the test."""
    started = []

    def start(**overrides):
        for name, value in overrides.items():
            setattr(settings, f"QMAILING_SMTP_{name.upper()}", value)
        controller = smtp_controller(host="127.0.0.1", port=_free_port())
        controller.start()
        started.append(controller)
        _wait_for(lambda: controller.handler.sessions == 0)  # start() probes the port with a connection of its own
        return controller

    yield start
    for controller in started:
        controller.stop()


def _wire(raw):
    """SMTP needs CRLF line ends; smtplib sends bytes as they are."""
    return raw.replace(b"\n", b"\r\n")


def _client(server):
    return smtplib.SMTP(server.hostname, server.port, timeout=30)


def _send(server, recipient, raw, timings, name):
    started = time.monotonic()
    with _client(server) as client:
        timings[name] = (client.sendmail("alice@example.com", [recipient], raw), time.monotonic() - started)


def _in_parallel(*calls):
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


@pytest.mark.latency
def test_a_hostile_pdf_neither_slows_its_own_session_nor_delays_another(start_server, mailbox, other_mailbox):
    server = start_server(max_message_bytes=35 * 1024 * 1024)
    hostile = _wire(make_message(to=mailbox.address, subject="Invoice",
                                 attachments=[("invoice.pdf", "application/pdf", operator_flood_pdf())]))
    plain = _wire(make_message(to=other_mailbox.address, subject="Lunch?"))
    timings = {}
    _in_parallel(lambda: _send(server, mailbox.address, hostile, timings, "hostile"),
                 lambda: _send(server, other_mailbox.address, plain, timings, "plain"))
    assert timings["plain"][0] == {} and timings["plain"][1] < within(2)
    assert timings["hostile"][0] == {} and timings["hostile"][1] < within(2)  # 85.8 s when the PDF was read inside DATA
    attachment = Email.objects.get(mailbox=mailbox).attachments.get()
    assert attachment.extraction == Extraction.PENDING and attachment.size > 0
    started = time.monotonic()
    attachments_extract(email_id=attachment.email_id)  # what the worker does after commit
    assert time.monotonic() - started < PDF_LIMITS.seconds + within(3)
    attachment.refresh_from_db()
    assert attachment.extraction in (Extraction.DONE, Extraction.FAILED) and attachment.extracted_text == ""


def _waiting_on_a_lock():
    """A backend of this test database waits on a lock (PostgreSQL's own account of it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres
@pytest.mark.latency
def test_a_delivery_stuck_on_a_locked_account_does_not_delay_another_session(start_server, owner, mailbox,
                                                                             other_mailbox):
    server = start_server(max_message_bytes=CAP)
    locked, release = threading.Event(), threading.Event()

    def hold_the_owner_account():
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=owner.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_owner_account)
    holder.start()
    assert locked.wait(10)
    timings = {}
    stuck = threading.Thread(target=_send, args=(server, mailbox.address,
                                                 _wire(make_message(to=mailbox.address)),
                                                 timings, "stuck"))
    stuck.start()
    _wait_for(lambda: server.handler.inflight_bytes > 0)  # its transaction is under way
    _wait_for(_waiting_on_a_lock, 10)  # and its delivery waits on the lock
    try:
        _send(server, other_mailbox.address, _wire(make_message(to=other_mailbox.address)),
              timings, "other")
        assert "stuck" not in timings
    finally:
        release.set()
        holder.join(10)
        stuck.join(30)
    assert timings["other"][0] == {} and timings["other"][1] < within(2)
    assert timings["stuck"][0] == {}
    assert Email.objects.filter(mailbox=mailbox).count() == 1


def test_connections_beyond_the_session_cap_get_421_4_3_2(start_server):
    server = start_server(max_sessions=2)
    first, second = _client(server), _client(server)
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        _client(server)
    assert refused.value.smtp_code == 421 and refused.value.smtp_error.startswith(b"4.3.2")
    first.quit()
    _wait_for(lambda: server.handler.sessions == 1)
    third = _client(server)
    assert third.noop()[0] == 250
    second.close()  # dropped without QUIT: the slot comes back all the same
    _wait_for(lambda: server.handler.sessions == 1)
    third.quit()


def test_the_in_flight_budget_answers_452_4_3_1_until_bytes_are_released(start_server, mailbox):
    server = start_server(max_message_bytes=CAP, max_inflight_bytes=100 * 1024)
    raw = _wire(make_message(to=mailbox.address, text="x" * 50_000))
    holder, waiter = _client(server), _client(server)
    holder.ehlo(), waiter.ehlo()
    assert holder.mail("alice@example.com", [f"SIZE={len(raw)}"])[0] == 250
    code, message = waiter.mail("bob@example.com", [f"SIZE={len(raw)}"])
    assert code == 452 and message.startswith(b"4.3.1")
    code, _ = waiter.mail("bob@example.com")  # without SIZE a transaction reserves the whole size cap
    assert code == 452
    holder.rset()
    assert waiter.mail("bob@example.com", [f"SIZE={len(raw)}"])[0] == 250
    waiter.rcpt(mailbox.address)
    assert waiter.data(raw)[0] == 250
    _wait_for(lambda: server.handler.inflight_bytes == 0)  # released once the message is stored
    holder.mail("alice@example.com", [f"SIZE={len(raw)}"])
    holder.close()  # the client vanishes mid-transaction, without QUIT: its reservation goes with it
    _wait_for(lambda: server.handler.inflight_bytes == 0)
    waiter.quit()


def test_a_message_longer_than_its_announced_size_gets_552_5_3_4(start_server, mailbox):
    server = start_server(max_message_bytes=CAP)
    raw = _wire(make_message(to=mailbox.address, text="y" * 30_000))
    with _client(server) as client:
        client.ehlo()
        client.mail("alice@example.com", ["SIZE=1000"])  # reserves little, then sends thirty times as much
        client.rcpt(mailbox.address)
        code, message = client.data(raw)
    assert code == 552 and message.startswith(b"5.3.4")
    assert not Email.objects.filter(mailbox=mailbox).exists()
    assert server.handler.inflight_bytes == 0
