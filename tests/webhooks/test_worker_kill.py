"""A Celery worker killed in the middle of a webhook delivery loses nothing, against the real Redis and PostgreSQL.

A real `celery -A qmailing worker` (prefork, concurrency 1) delivers to a loopback receiver that holds the first
request open; the test SIGKILLs the worker's whole process group while the receiver is inside that request, so
the task is neither acknowledged nor rejected: Redis keeps its message as unacknowledged until the broker's
visibility timeout (an hour), and the delivery row keeps the lease its attempt took. A second worker delivers
the rest, then the beat sweep (`webhooks_sweep_task`, run here) re-enqueues the interrupted delivery once its
lease has run out, and every event reaches the receiver, signed, with the interrupted one repeated under the
same webhook-id.
"""

import base64
import json
import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F

from mailboxes.inbound.ingest import email_ingest
from tests.faults import Worker
from tests.mailboxes.inbound_helpers import make_message
from tests.qmailing.test_processes import _database_env, _wait
from tests.webhooks.receiver import Receiver
from webhooks.delivery import LEASE_SECONDS, deliveries_due
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services import webhook_register
from webhooks.tasks import SWEEP_GRACE_SECONDS, webhooks_sweep_task

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EVENTS = 5
HOLD_SECONDS = 5.0  # the receiver keeps the first request open this long: the kill lands inside it


def _unacked_tags(delivery_id):
    """Delivery tags of the messages the Redis transport holds as unacknowledged for this delivery's task."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        entries = client.hgetall("unacked")  # kombu.transport.redis.Channel.unacked_key: tag -> [message, …]
        tags = []
        for tag, raw in entries.items():
            message = json.loads(raw)[0]
            if delivery_id in base64.b64decode(message["body"]).decode("utf-8", "replace"):
                tags.append(tag)
        return tags
    finally:
        client.close()


def _forget_unacked(tags):
    """Drop those messages, so no worker restores them an hour from now (they would be no-ops anyway)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for tag in tags:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    finally:
        client.close()


def _pending():
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_delivery_loses_nothing(settings, tmp_path):
    from tests.conftest import make_user

    settings.QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # tasks go through Redis to the worker processes
    receiver = Receiver().start()
    receiver.delay = HOLD_SECONDS
    account = make_user("killed-worker@example.org", plan="PRO").account
    mailbox = account.mailboxes.get()
    endpoint, secret = webhook_register(account=account, url=receiver.url, event_types=["email.received"])
    env = {**os.environ, **_database_env(), "QMAILING_VAR_DIR": str(settings.VAR_DIR),  # the same secret key
           "REDIS_URL": settings.REDIS_URL, "CELERY_TASK_ALWAYS_EAGER": "false",
           "QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS": "127.0.0.1"}
    first = second = None
    unacked = []
    try:
        first = Worker("wh-kill-1", env, tmp_path / "worker-1.log", queues=f"celery,{settings.QMAILING_WEBHOOK_QUEUE}")
        for number in range(EVENTS):  # each commit enqueues its delivery (webhooks.tasks.enqueue_on_commit)
            email_ingest(mailbox=mailbox, raw=make_message(subject=f"Kill test {number}", to=mailbox.address))
        assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == EVENTS

        _wait(lambda: len(receiver.requests) >= 1, 30, f"the first delivery to reach the receiver (log: {first.log_path})")
        first.kill()  # the receiver holds that request HOLD_SECONDS: the kill lands inside it
        receiver.delay = 0

        # Killed mid-delivery: one request arrived, nothing was answered or recorded after it.
        assert len(receiver.requests) == 1
        interrupted_id = receiver.requests[0]["headers"]["webhook-id"]
        interrupted = WebhookDelivery.objects.get(endpoint=endpoint, event_id=interrupted_id.removeprefix("msg_"))
        assert (interrupted.status, interrupted.attempts) == (WebhookDelivery.Status.PENDING, 1)
        assert WebhookAttempt.objects.get(delivery=interrupted).status_code is None  # the answer never came
        assert _pending().count() == EVENTS

        # A new worker takes the tasks still queued; the interrupted one's message sits unacknowledged in Redis.
        second = Worker("wh-kill-2", env, tmp_path / "worker-2.log", queues=f"celery,{settings.QMAILING_WEBHOOK_QUEUE}")
        _wait(lambda: list(_pending().values_list("pk", flat=True)) == [interrupted.pk], 30,
              f"the other deliveries (log: {second.log_path})")
        # Its lease holds it back from the sweep until the lease runs out, and the broker would not hand its
        # message out again before the visibility timeout (an hour): only the sweep brings it back.
        assert str(interrupted.pk) not in deliveries_due()
        unacked = _unacked_tags(str(interrupted.pk))
        assert len(unacked) == 1

        # The lease running out: `next_attempt_at` is the only clock the lease has (deliveries_due and the claim
        # compare it with now), so moving it back by the lease and the sweep's grace is the same as waiting them out.
        _pending().update(next_attempt_at=F("next_attempt_at") - timedelta(seconds=LEASE_SECONDS + SWEEP_GRACE_SECONDS))
        assert webhooks_sweep_task() == 1  # what beat runs each minute: enqueued through Redis to the new worker
        _wait(lambda: not _pending().exists(), 30, f"the swept delivery (log: {second.log_path})")
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        receiver.stop()
        _forget_unacked(unacked)

    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert {d.status for d in deliveries} == {WebhookDelivery.Status.SUCCEEDED}
    verified = receiver.verified(secret)  # the standardwebhooks package accepts every request
    assert len(verified) == len(receiver.requests) == EVENTS + 1
    ids = [request["headers"]["webhook-id"] for request in receiver.requests]
    assert set(ids) == {d.message_id for d in deliveries}  # every event arrived
    assert {i: ids.count(i) for i in ids if ids.count(i) > 1} == {interrupted_id: 2}  # the only repeat: same id
    by_event = {body["id"]: body for body in verified}
    assert set(by_event) == {f"evt_{d.event_id.hex}" for d in deliveries}
    assert sorted(body["data"]["subject"] for body in by_event.values()) == [f"Kill test {n}" for n in range(EVENTS)]
    assert interrupted.attempt_log.count() == 2  # the killed attempt and the one that succeeded
