"""Celery tasks of the mail store: thin wrappers that load ids, call one service and own the retries."""

import logging

from celery import shared_task
from django.db import transaction

from mailboxes.inbound.extraction import attachments_extract
from mailboxes.models import Email
from mailboxes.outbound.confirmation import confirmation_mail_send
from mailboxes.outbound.delivery import email_deliver_external, email_set_delivery
from mailboxes.outbound.forwarding import email_forward
from mailboxes.outbound.relay import permanent_failure
from mailboxes.store.services import emails_purge_expired

logger = logging.getLogger(__name__)

# Backoff for a backend that is down: 1, 2, 4, 8, 16, 32 minutes, then the message counts as failed.
MAX_DELIVERY_RETRIES = 6


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_deliver_task(self, email_id, recipients, bounced=False):
    try:
        email_deliver_external(email_id=email_id, recipients=recipients, bounced=bounced)
    except Exception as exc:
        if permanent_failure(exc) or self.request.retries >= self.max_retries:
            logger.warning("delivery of %s failed for good: %s", email_id, exc)
            email_set_delivery(email_id=email_id, status=Email.Delivery.FAILED, detail=f"{type(exc).__name__}: {exc}"[:500])
            return
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries)


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_forward_task(self, email_id):
    try:
        email_forward(email_id=email_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            logger.warning("forwarding of %s failed for good: %s", email_id, exc)
            return
        # Each address's progress is recorded, so the retry sends only to those not done yet.
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries, kwargs={"email_id": email_id})


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def forwarding_confirmation_send_task(self, confirmation_id, mailbox_id):
    try:
        confirmation_mail_send(confirmation_id=confirmation_id, mailbox_id=mailbox_id)
    except Exception as exc:
        if permanent_failure(exc) or self.request.retries >= self.max_retries:
            logger.warning("forwarding confirmation %s could not be sent: %s", confirmation_id, exc)
            return
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries)


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
    try:
        attachments_extract(email_id=email_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            logger.warning("text extraction of %s failed for good: %s", email_id, exc)
            return
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries)


@shared_task
def mail_purge_trash_task():
    purged = emails_purge_expired()
    if purged:
        logger.info("purged %d email(s) past their trash retention", purged)
    return purged
