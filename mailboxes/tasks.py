"""Celery tasks of the mail store: thin wrappers that load ids, call one service and own the retries."""

import logging
import smtplib

from celery import shared_task

logger = logging.getLogger(__name__)

# Backoff for a backend that is down: 1, 2, 4, 8, 16, 32 minutes, then the message counts as failed.
MAX_DELIVERY_RETRIES = 6


def _permanent(exc):
    """A refusal that retrying cannot fix (bad recipients, rejected sender)."""
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)):
        return True
    try:
        from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused
    except ImportError:
        return False
    return isinstance(exc, (AnymailRecipientsRefused, AnymailInvalidAddress))


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_deliver_task(self, email_id, recipients):
    from mailboxes.delivery import email_deliver_external, email_set_delivery
    from mailboxes.models import Email

    try:
        email_deliver_external(email_id=email_id, recipients=recipients)
    except Exception as exc:
        if _permanent(exc) or self.request.retries >= self.max_retries:
            logger.warning("delivery of %s failed for good: %s", email_id, exc)
            email_set_delivery(email_id=email_id, status=Email.Delivery.FAILED, detail=f"{type(exc).__name__}: {exc}"[:500])
            return
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries)


@shared_task(bind=True, max_retries=MAX_DELIVERY_RETRIES, acks_late=True)
def email_forward_task(self, email_id, local_done=False):
    from mailboxes.forwarding import email_forward

    try:
        email_forward(email_id=email_id, local_done=local_done)
    except Exception as exc:
        if _permanent(exc) or self.request.retries >= self.max_retries:
            logger.warning("forwarding of %s failed for good: %s", email_id, exc)
            return
        # Hosted copies were made before the relay failed; a retry must not make them twice.
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries,
                         kwargs={"email_id": email_id, "local_done": getattr(exc, "local_done", local_done)})


@shared_task
def mail_purge_trash_task():
    from mailboxes.mail_services import emails_purge_expired

    purged = emails_purge_expired()
    if purged:
        logger.info("purged %d email(s) past their trash retention", purged)
    return purged
