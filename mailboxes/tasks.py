"""Celery tasks of the mail store: thin wrappers that load ids, call one service and own the retries."""

import logging

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from mailboxes.inbound.extraction import attachments_extract
from mailboxes.models import Email
from mailboxes.outbound.confirmation import confirmation_mail_send
from mailboxes.outbound.delivery import email_deliver_external, email_set_delivery
from mailboxes.outbound.forwarding import email_forward, forward_give_up
from mailboxes.outbound.relay import permanent_failure
from mailboxes.store.drafts import drafts_send_due
from mailboxes.store.services import emails_purge_expired
from mailboxes.work import handoffs_settle, work_due
from core.enqueue import enqueue_now, enqueue_on_commit

logger = logging.getLogger(__name__)

# Backoff for a backend that is down: 1, 2, 4, 8, 16, 32 minutes, then the message counts as failed.
MAX_DELIVERY_RETRIES = 6


def _run_or_retry(task, work, *, what, permanent=lambda exc: False, on_give_up=None, on_retry=None, **retry):
    """Run one service call; on an error retry with backoff (1, 2, 4… minutes) until the retries are
    used up or the error is `permanent`, then log it and give up (calling `on_give_up(exc)`).
    `on_retry(countdown)` records when the work is next due, so the sweep waits for the retry."""
    try:
        work()
    except Exception as exc:
        if permanent(exc) or task.request.retries >= task.max_retries:
            logger.warning("%s failed for good: %s", what, exc)
            if on_give_up is not None:
                on_give_up(exc)
            return
        countdown = 60 * 2 ** task.request.retries
        if on_retry is not None:
            on_retry(countdown)
        raise task.retry(exc=exc, countdown=countdown, **retry)


def _due_in(email_id):
    def record(countdown):
        Email.objects.filter(pk=email_id, followup_due_at__isnull=False).update(
            followup_due_at=timezone.now() + timedelta(seconds=countdown))
    return record


def _done(email_id):
    Email.objects.filter(pk=email_id).update(followup_due_at=None)


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_deliver_task(self, email_id, recipients=None, bounced=None):
    # recipients/bounced: from messages queued before they were kept on the row; the row wins.
    def give_up(exc):
        email_set_delivery(email_id=email_id, status=Email.Delivery.FAILED, detail=f"{type(exc).__name__}: {exc}"[:500])
        _done(email_id)

    _run_or_retry(self, lambda: email_deliver_external(email_id=email_id, recipients=recipients, bounced=bounced),
                  what=f"delivery of {email_id}", permanent=permanent_failure, on_give_up=give_up,
                  on_retry=_due_in(email_id))


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_forward_task(self, email_id):
    # Each address's progress is recorded, so a retry sends only to those not done yet.
    _run_or_retry(self, lambda: email_forward(email_id=email_id), what=f"forwarding of {email_id}",
                  on_give_up=lambda exc: forward_give_up(email_id=email_id, detail=f"{type(exc).__name__}: {exc}"),
                  on_retry=_due_in(email_id), kwargs={"email_id": email_id})


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def forwarding_confirmation_send_task(self, confirmation_id, mailbox_id):
    _run_or_retry(self, lambda: confirmation_mail_send(confirmation_id=confirmation_id, mailbox_id=mailbox_id),
                  what=f"forwarding confirmation {confirmation_id}", permanent=permanent_failure)


def deliver_on_commit(*, email, recipients, bounced, **kwargs):
    """external_recipients receiver, inside the sending transaction: record the outside delivery on the
    SENT copy (mailboxes.work), then wake a worker once it commits."""
    email.delivery_recipients = list(recipients)
    email.delivery_bounced = bool(bounced)
    email.followup_due_at = timezone.now()
    email.save(update_fields=["delivery_recipients", "delivery_bounced", "followup_due_at"])
    enqueue_on_commit(email_deliver_task, str(email.id))


def extract_on_commit(*, email, **kwargs):
    """attachments_pending receiver (connected in MailboxesConfig.ready): extract after commit. The
    attachments' `pending` state is the record; the sweep finds them if this wake-up is lost."""
    enqueue_on_commit(attachments_extract_task, str(email.pk))


def forward_on_commit(*, email, **kwargs):
    """email_received receiver (connected in MailboxesConfig.ready): record that this email is to be forwarded,
    in the storing transaction, and wake a worker after commit."""
    if email.direction != Email.Direction.INBOUND or not email.mailbox.forwarding_addresses:
        return
    Email.objects.filter(pk=email.pk).update(followup_due_at=timezone.now())
    enqueue_on_commit(email_forward_task, str(email.id))


def work_sweep(*, now=None):
    """Every piece of mail work left undone too long enqueued again, interrupted hand-offs settled (mailboxes.work);
    returns how many of each kind."""
    settled = handoffs_settle(now=now)
    due = work_due(now=now)
    for task, kind in ((email_deliver_task, "deliveries"), (email_forward_task, "forwards"),
                       (attachments_extract_task, "extractions")):
        for email_id in due[kind]:
            enqueue_now(task, email_id)  # still recorded if the broker is away: the next sweep tries again
    return {"uncertain": settled, **{kind: len(ids) for kind, ids in due.items()}}


@shared_task
def mail_work_sweep_task():
    """Beat, every QMAILING_SWEEP_SECONDS: every piece of mail work left undone is enqueued again."""
    counts = work_sweep()
    if any(counts.values()):
        logger.info("work sweep: %s", counts)
    return counts


@shared_task(bind=True, max_retries=3, acks_late=True)
def attachments_extract_task(self, email_id):
    # Enqueued by ingest after commit. A document that fails or breaks a limit is recorded as failed, not
    # retried; a retry is for the database or storage being away, and redoes only what is still pending.
    _run_or_retry(self, lambda: attachments_extract(email_id=email_id), what=f"text extraction of {email_id}")


@shared_task
def mail_purge_trash_task():
    purged = emails_purge_expired()
    if purged:
        logger.info("purged %d email(s) past their trash retention", purged)
    return purged


@shared_task
def drafts_send_due_task():
    """Beat, each minute: send the scheduled drafts whose time has come."""
    return drafts_send_due()
