"""Celery tasks of the mail store: thin wrappers that load ids, call one service and own the retries."""

import logging

from celery import shared_task
from django.db import transaction

from mailboxes.inbound.extraction import attachments_extract, emails_with_stuck_extraction
from mailboxes.models import Email
from mailboxes.outbound.confirmation import confirmation_mail_send
from mailboxes.outbound.delivery import email_deliver_external, email_set_delivery
from mailboxes.outbound.forwarding import email_forward
from mailboxes.outbound.relay import permanent_failure
from mailboxes.store.drafts import drafts_send_due
from mailboxes.store.services import emails_purge_expired

logger = logging.getLogger(__name__)

# Backoff for a backend that is down: 1, 2, 4, 8, 16, 32 minutes, then the message counts as failed.
MAX_DELIVERY_RETRIES = 6


def _run_or_retry(task, work, *, what, permanent=lambda exc: False, on_give_up=None, **retry):
    """Run one service call; on an error retry with backoff (1, 2, 4… minutes) until the retries are
    used up or the error is `permanent`, then log it and give up (calling `on_give_up(exc)`)."""
    try:
        work()
    except Exception as exc:
        if permanent(exc) or task.request.retries >= task.max_retries:
            logger.warning("%s failed for good: %s", what, exc)
            if on_give_up is not None:
                on_give_up(exc)
            return
        raise task.retry(exc=exc, countdown=60 * 2 ** task.request.retries, **retry)


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_deliver_task(self, email_id, recipients, bounced=False):
    _run_or_retry(
        self, lambda: email_deliver_external(email_id=email_id, recipients=recipients, bounced=bounced),
        what=f"delivery of {email_id}", permanent=permanent_failure,
        on_give_up=lambda exc: email_set_delivery(email_id=email_id, status=Email.Delivery.FAILED,
                                                  detail=f"{type(exc).__name__}: {exc}"[:500]))


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_forward_task(self, email_id):
    # Each address's progress is recorded, so a retry sends only to those not done yet.
    _run_or_retry(self, lambda: email_forward(email_id=email_id), what=f"forwarding of {email_id}",
                  kwargs={"email_id": email_id})


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def forwarding_confirmation_send_task(self, confirmation_id, mailbox_id):
    _run_or_retry(self, lambda: confirmation_mail_send(confirmation_id=confirmation_id, mailbox_id=mailbox_id),
                  what=f"forwarding confirmation {confirmation_id}", permanent=permanent_failure)


def deliver_on_commit(email, recipients, *, bounced):
    """send.on_external_recipients hook: hand the external recipients to the backend once the copy commits."""
    email_id = str(email.id)
    transaction.on_commit(lambda: email_deliver_task.delay(email_id, recipients, bounced=bounced))


def extract_on_commit(email):
    """Ingest's pending-attachments hook (registered in MailboxesConfig.ready): extract after commit."""
    email_id = str(email.pk)
    # robust: a broker hiccup must not turn a stored message into an error (its attachments stay pending).
    transaction.on_commit(lambda: attachments_extract_task.delay(email_id), robust=True)


def forward_on_commit(email):
    """Ingest's received hook (registered in MailboxesConfig.ready): forward this email after commit."""
    if email.direction != Email.Direction.INBOUND or not email.mailbox.forwarding_addresses:
        return
    email_id = str(email.id)
    transaction.on_commit(lambda: email_forward_task.delay(email_id))


@shared_task(bind=True, max_retries=3, acks_late=True)
def attachments_extract_task(self, email_id):
    # Enqueued by ingest after commit. A document that fails or breaks a limit is recorded as failed, not
    # retried; a retry is for the database or storage being away, and redoes only what is still pending.
    _run_or_retry(self, lambda: attachments_extract(email_id=email_id), what=f"text extraction of {email_id}")


@shared_task
def attachments_extract_sweep_task():
    """Beat: enqueue again the emails whose attachment text has waited too long (a lost task)."""
    stuck = emails_with_stuck_extraction()
    for email_id in stuck:
        attachments_extract_task.delay(str(email_id))
    return len(stuck)


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
