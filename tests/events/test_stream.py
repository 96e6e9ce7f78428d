"""Waiting on the event log: qmailing_wait_for_events over REST, and the waiter under it (events.stream).

The waiter must return at once when events are there, wake within a second when one commits elsewhere
(another thread here; another process through Redis), skip what its filters leave out, and time out empty.
"""

import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from mailboxes.inbound.ingest import email_ingest
from agent.operations import registry
from tests.api_helpers import call, token_for, waiting
from tests.mailboxes.inbound_helpers import make_message
from events.selectors import event_batch, event_latest_cursor
from events.services import event_publish
from events.stream import event_wait
from tests.timing import wait_until, within

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # other threads see the rows


@pytest.mark.latency
def test_events_already_there_come_back_at_once(client, owner, mailbox):
    token = token_for(owner, scopes="email:read")
    start = event_latest_cursor(account_id=owner.pk)
    mail = email_ingest(mailbox=mailbox, raw=make_message(subject="Hello there"))
    began = time.monotonic()
    response = call(client, registry()["qmailing_wait_for_events"], token=token,
                    args={"cursor": start, "types": ["email.received"], "timeout_seconds": 10})
    assert response.status_code == 200, response.content
    assert time.monotonic() - began < within(2)
    body = response.json()
    assert body["cursor"] == start and body["next_cursor"] > start
    [event] = body["events"]
    assert event["type"] == "email.received" and event["payload"]["email_id"] == str(mail.id)
    assert event["mailbox_id"] == str(mailbox.id)


@pytest.mark.latency
def test_a_wait_times_out_empty_and_says_where_to_go_on(client, owner):
    token = token_for(owner, scopes="email:read")
    began = time.monotonic()
    response = call(client, registry()["qmailing_wait_for_events"], token=token, args={"timeout_seconds": 0.3})
    assert response.status_code == 200 and 0.25 < time.monotonic() - began < within(3)
    assert response.json() == {"cursor": event_latest_cursor(account_id=owner.pk),
                               "next_cursor": event_latest_cursor(account_id=owner.pk), "events": []}


def test_filters_skip_other_events_and_the_cursor_moves_past_them(owner, mailbox):
    start = event_latest_cursor(account_id=owner.pk)
    event_publish(account=owner, type="domain.added", payload={"name": "brand.example"})
    batch = event_batch(account_id=owner.pk, after=start, types=["email.received"])
    assert batch.events == [] and batch.next_cursor == start + 1


@pytest.mark.latency
def test_a_waiter_wakes_within_a_second_of_an_event_from_another_thread(owner, mailbox):
    start = event_latest_cursor(account_id=owner.pk)
    stamp = {}

    def later():
        wait_until(lambda: waiting(owner), 20, "the waiter registered")
        stamp["began"] = time.monotonic()  # it commits before email_ingest returns: an upper bound below
        email_ingest(mailbox=mailbox, raw=make_message(subject="Arrives while waiting"))
        connection.close()

    writer = threading.Thread(target=later)
    writer.start()
    batch = event_wait(account_id=owner.pk, after=start, types=["email.received"], timeout=10)
    waited = time.monotonic() - stamp["began"]
    writer.join()
    assert [e.payload["subject"] for e in batch.events] == ["Arrives while waiting"]
    assert waited < within(1.0), waited


def test_a_cursor_ahead_of_the_log_is_refused(client, owner):
    token = token_for(owner, scopes="email:read")
    response = call(client, registry()["qmailing_wait_for_events"], token=token,
                    args={"cursor": event_latest_cursor(account_id=owner.pk) + 10, "timeout_seconds": 0})
    assert response.status_code == 400 and response.json()["errors"] == {"cursor": [response.json()["detail"]]}


def test_another_accounts_mailbox_is_not_found_and_its_events_never_show(client, owner, outsider):
    token = token_for(owner, scopes="email:read")
    theirs = outsider.mailboxes.get()
    response = call(client, registry()["qmailing_wait_for_events"], token=token,
                    args={"mailbox_id": theirs.id, "timeout_seconds": 0})
    assert response.status_code == 404
    start = event_latest_cursor(account_id=owner.pk)
    email_ingest(mailbox=theirs, raw=make_message(subject="Not yours"))
    assert event_batch(account_id=owner.pk, after=start).events == []


@pytest.mark.postgres
@pytest.mark.redis
def test_an_event_written_by_another_process_wakes_the_waiter_through_redis(owner, mailbox):
    """The SMTP server and the workers are other processes: their events reach a waiter here via Redis."""
    start = event_latest_cursor(account_id=owner.pk)
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    script = (
        "import sys, time, django; django.setup(); sys.stdin.readline()  # go: the waiter is waiting\n"
        "from mailboxes.models import Mailbox; from mailboxes.inbound.ingest import email_ingest\n"
        "from tests.mailboxes.inbound_helpers import make_message\n"
        f"email_ingest(mailbox=Mailbox.objects.get(pk='{mailbox.pk}'), raw=make_message(subject='From afar'))\n"
        "print(time.time(), flush=True)\n"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "qmailing.settings"}
    writer = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)

    def go_once_waiting():  # the write must find the waiter waiting, or no wake-up is tested
        wait_until(lambda: waiting(owner) > 0, 20, "the waiter registered")
        writer.stdin.write("go\n")
        writer.stdin.flush()

    threading.Thread(target=go_once_waiting, daemon=True).start()
    try:
        batch = event_wait(account_id=owner.pk, after=start, types=["email.received"], timeout=20)
        woke = time.time()
        written = float(writer.communicate(timeout=30)[0].strip())
    finally:
        writer.kill()
    assert [e.payload["subject"] for e in batch.events] == ["From afar"]
    # Well under the 5 s safety poll: the announcement through Redis woke it.
    assert woke - written < 1.0, woke - written
