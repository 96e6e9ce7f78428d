import threading

import pytest
from django.db import connection, transaction

from events.models import AppendOnly, Event
from events.selectors import event_batch
from events.services import event_publish
from events.signals import event_committed, event_written


def test_cursors_increase_per_account(owner, outsider):
    owner.refresh_from_db()
    start = owner.event_cursor
    first = event_publish(account=owner, type="domain.added", payload={"n": 1})
    second = event_publish(account=owner, type="domain.added", payload={"n": 2})
    foreign = event_publish(account=outsider, type="domain.added", payload={"n": 3})
    assert (first.cursor, second.cursor) == (start + 1, start + 2)
    assert [e.payload["n"] for e in event_batch(account_id=owner.pk, after=start).events] == [1, 2]
    assert foreign not in event_batch(account_id=owner.pk, after=0).events


def test_events_vanish_with_a_rolled_back_change(owner):
    before = Event.objects.filter(account=owner).count()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            event_publish(account=owner, type="domain.added", payload={})
            raise RuntimeError("the change failed")
    assert Event.objects.filter(account=owner).count() == before


def test_events_are_append_only(owner):
    event = event_publish(account=owner, type="domain.added", payload={})
    event.payload = {"tampered": True}
    with pytest.raises(AppendOnly):
        event.save()


def test_subscribers_run_only_after_commit(owner, django_capture_on_commit_callbacks):
    seen = []

    def receiver(*, event, **kwargs):
        seen.append(event)

    event_committed.connect(receiver, weak=False, dispatch_uid="tests.events.seen")
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            event = event_publish(account=owner, type="domain.added", payload={})
            assert seen == []
        assert len(callbacks) == 1 and seen == [event]
    finally:
        event_committed.disconnect(dispatch_uid="tests.events.seen")


def test_filter_by_mailbox_and_type(owner):
    mailbox = owner.mailboxes.first()
    owner.refresh_from_db()
    start = owner.event_cursor
    event_publish(account=owner, type="domain.added", payload={})
    mine = event_publish(account=owner, mailbox=mailbox, type="email.received", payload={})
    assert event_batch(account_id=owner.pk, after=start, mailbox_id=mailbox.pk).events == [mine]
    assert event_batch(account_id=owner.pk, after=start, types=["email.received"]).events == [mine]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_publishers_get_distinct_gapless_cursors():
    from tests.conftest import make_user

    account = make_user("race@example.com").account
    start = Event.objects.filter(account=account).count()
    errors = []

    def publish(n):
        try:
            for i in range(10):
                event_publish(account=account, type="domain.added", payload={"thread": n, "i": i})
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cursors = sorted(Event.objects.filter(account=account).values_list("cursor", flat=True))
    assert cursors == list(range(1, start + 51))


def test_one_failing_consumer_is_logged_and_the_others_still_hear_the_event(owner, caplog,
                                                                           django_capture_on_commit_callbacks):
    seen = []

    def broken(**kwargs):
        raise RuntimeError("consumer down")

    def listening(*, event, **kwargs):
        seen.append(event)

    event_committed.connect(broken, weak=False, dispatch_uid="tests.events.broken")
    event_committed.connect(listening, weak=False, dispatch_uid="tests.events.listening")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = event_publish(account=owner, type="domain.added", payload={})
    finally:
        event_committed.disconnect(dispatch_uid="tests.events.broken")
        event_committed.disconnect(dispatch_uid="tests.events.listening")
    assert seen == [event]
    assert "event subscriber" in caplog.text and "consumer down" in caplog.text


def test_a_failing_receiver_inside_the_transaction_takes_the_event_back_with_it(owner):
    def broken(**kwargs):
        raise RuntimeError("cannot record it")

    before = Event.objects.filter(account=owner).count()
    event_written.connect(broken, weak=False, dispatch_uid="tests.events.written_broken")
    try:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                event_publish(account=owner, type="domain.added", payload={})
    finally:
        event_written.disconnect(dispatch_uid="tests.events.written_broken")
    assert Event.objects.filter(account=owner).count() == before


def test_the_log_keeps_its_table_and_deliveries_still_point_at_it():
    from webhooks.models import WebhookDelivery

    assert Event._meta.app_label == "events" and Event._meta.db_table == "webhooks_event"
    assert WebhookDelivery._meta.get_field("event").related_model is Event
