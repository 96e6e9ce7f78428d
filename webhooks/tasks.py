"""Celery tasks of webhook delivery: thin wrappers that own the scheduling (webhooks.delivery does the work)."""

from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from core.enqueue import enqueue_now
from webhooks.delivery import delivery_attempt, deliveries_due

SOON_SECONDS = 600  # a retry due within this is enqueued with a countdown; later ones are left to the sweep
# The sweep takes what has been due for this long without an attempt: a task that was lost or a worker that
# died (whose lease has run out). Sooner, it would enqueue again what is merely waiting in a busy queue.
SWEEP_GRACE_SECONDS = 60


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver_task(delivery_id):
    """One attempt of a delivery (late acknowledgement: a worker killed mid-attempt leaves it to the sweep)."""
    outcome = delivery_attempt(delivery_id)
    if outcome.retry_in is not None and outcome.retry_in <= SOON_SECONDS:
        webhook_deliver_task.apply_async(args=[delivery_id], countdown=outcome.retry_in)
    return outcome.succeeded


@shared_task(ignore_result=True)
def webhooks_sweep_task():
    """Beat, each minute: enqueue every pending delivery that is due (lost tasks, retries, killed workers)."""
    due = deliveries_due(now=timezone.now() - timedelta(seconds=SWEEP_GRACE_SECONDS))
    for delivery_id in due:
        webhook_deliver_task.delay(delivery_id)
    return len(due)


def enqueue_on_commit(*, ids, **kwargs):
    """deliveries_ready receiver: enqueue the deliveries once their transaction commits."""
    def enqueue():
        for delivery_id in ids:
            enqueue_now(webhook_deliver_task, delivery_id)  # the broker away: the sweep enqueues it within a minute

    transaction.on_commit(enqueue)
