"""Two hosted users mailing each other at the same moment must queue up on PostgreSQL, never deadlock."""

import threading
import time

import pytest
from django.db import connection

from mailboxes.inbound import hosted
from mailboxes.outbound import send
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.models import Email
from mailboxes.outbound.send import email_send

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROUNDS = 8


def _crosswise(first, second):
    """Run both callables in two threads, ROUNDS times, each round started together; return the errors."""
    barrier, errors = threading.Barrier(2, timeout=30), []

    def run(work):
        try:
            for _ in range(ROUNDS):
                barrier.wait()
                work()
        except Exception as exc:  # a deadlock surfaces here as OperationalError
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _slowly(function):
    # Widens the moment between the first lock and the next, where opposite orders used to deadlock.
    def slow(*args, **kwargs):
        time.sleep(0.05)
        return function(*args, **kwargs)
    return slow


def test_two_hosted_users_sending_to_each_other_at_once_never_deadlock(owner, outsider, monkeypatch):
    mine, theirs = owner.mailboxes.get(), outsider.mailboxes.get()
    monkeypatch.setattr(send, "send_reserve", _slowly(send.send_reserve))
    errors = _crosswise(lambda: email_send(account=owner, mailbox=mine, to=[theirs.address], text="ping"),
                        lambda: email_send(account=outsider, mailbox=theirs, to=[mine.address], text="pong"))
    assert errors == []
    assert Email.objects.filter(mailbox=theirs, folder="INBOX").count() == ROUNDS
    assert Email.objects.filter(mailbox=mine, folder="INBOX").count() == ROUNDS


def test_smtp_deliveries_listing_two_accounts_in_opposite_orders_never_deadlock(owner, outsider, monkeypatch):
    from tests.mailboxes.inbound_helpers import make_message

    mine, theirs = owner.mailboxes.get(), outsider.mailboxes.get()
    monkeypatch.setattr(hosted, "email_ingest", _slowly(hosted.email_ingest))
    raw = make_message()
    errors = _crosswise(lambda: deliver_hosted(raw=raw, recipients=[mine.address, theirs.address]),
                        lambda: deliver_hosted(raw=raw, recipients=[theirs.address, mine.address]))
    assert errors == []
    assert Email.objects.filter(mailbox=mine).count() == Email.objects.filter(mailbox=theirs).count() == 2 * ROUNDS
