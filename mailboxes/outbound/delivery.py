"""Delivery status of sent mail: hand-off to the backend, then the ESP's tracking events.

queued → sent (handed to the backend) → delivered / bounced / failed, or queued → uncertain when a worker
stopped mid-hand-off (mailboxes.work: never re-sent blindly). A status only moves forward, so late or
repeated tracking events (one per recipient, retried webhooks) never undo a worse outcome.
"""

import logging
from email.utils import formataddr

from django.db import transaction
from django.utils import timezone
from django.template.defaultfilters import pluralize

from mailboxes.models import Email
from mailboxes.outbound.relay import relay_refused, relay_send
from events.models import EventType
from events.services import event_publish

logger = logging.getLogger(__name__)

# Uncertain ranks with sent: the ESP's tracking may still tell delivered or bounced.
_RANK = {"": 0, Email.Delivery.QUEUED: 1, Email.Delivery.SENT: 2, Email.Delivery.UNCERTAIN: 2,
         Email.Delivery.DELIVERED: 3, Email.Delivery.FAILED: 4, Email.Delivery.BOUNCED: 4}
_EVENTS = {Email.Delivery.SENT: EventType.EMAIL_SENT, Email.Delivery.DELIVERED: EventType.EMAIL_DELIVERED,
           Email.Delivery.BOUNCED: EventType.EMAIL_BOUNCED, Email.Delivery.FAILED: EventType.EMAIL_FAILED,
           Email.Delivery.UNCERTAIN: EventType.EMAIL_FAILED}
# anymail's normalised tracking event types → our delivery status.
TRACKING_STATUS = {"delivered": Email.Delivery.DELIVERED, "bounced": Email.Delivery.BOUNCED,
                   "failed": Email.Delivery.FAILED, "rejected": Email.Delivery.FAILED}


def delivery_payload(email):
    return {"email_id": str(email.id), "mailbox_id": str(email.mailbox_id), "thread_id": str(email.thread_id),
            "message_id": email.message_id, "subject": email.subject, "delivery_status": email.delivery_status}


def email_set_delivery(*, email_id, status, detail="", esp_message_id=None):
    """Move a sent email's delivery status forward and publish the matching event; returns the Email or None."""
    with transaction.atomic():
        email = Email.objects.select_for_update().filter(pk=email_id).select_related("account", "mailbox").first()
        if email is None or _RANK[status] < _RANK[email.delivery_status] or status == email.delivery_status:
            return email
        email.delivery_status = status
        fields = ["delivery_status"]
        if detail:
            email.delivery_detail = (f"{email.delivery_detail}\n{detail}" if email.delivery_detail else detail)[-4000:]
            fields.append("delivery_detail")
        if esp_message_id:
            email.esp_message_id = esp_message_id.strip("<>")[:255]
            fields.append("esp_message_id")
        email.save(update_fields=fields)
        event_publish(account=email.account, mailbox=email.mailbox, type=_EVENTS[status], payload=delivery_payload(email))
    return email


def email_deliver_external(*, email_id, recipients=None, bounced=None):
    """Hand the stored signed bytes of a SENT copy to the backend, at most once; queued → sent.

    The recipients and `bounced` (a hosted recipient of the same send was refused, named in
    delivery_detail already: once the others are handed off the status moves on to bounced, the worst
    outcome winning) are on the row (mailboxes.work); the arguments serve tasks queued before that.
    The hand-off is claimed first (`handoff_at`, a conditional update): a task enqueued twice sends once,
    and a worker killed during the relay call leaves the marker for the sweep to settle as uncertain.
    A relay error that proves nothing was taken (a refusal code, no connection) clears the marker, so the
    retry may send; any other (a timeout or a dropped connection after DATA) leaves it: uncertain.
    """
    email = Email.objects.filter(pk=email_id).select_related("mailbox__domain").first()
    if email is None:
        return email  # purged meanwhile
    recipients = list(email.delivery_recipients or recipients or [])
    bounced = email.delivery_bounced or bool(bounced)
    if email.delivery_status == Email.Delivery.QUEUED and recipients:
        claimed = Email.objects.filter(pk=email.pk, delivery_status=Email.Delivery.QUEUED,
                                       handoff_at__isnull=True).update(handoff_at=timezone.now())
        if not claimed:
            return email  # another worker is handing it off, or one died doing so (the sweep settles it)
        with email.raw.open("rb") as handle:
            raw = handle.read()
        try:
            esp_message_id = relay_send(raw=raw, envelope_from=email.mailbox.address, recipients=recipients,
                                        header_from=formataddr((email.from_name, email.from_address)))
        except Exception as exc:
            if relay_refused(exc):  # the relay said no, or was never reached: the retry may send
                Email.objects.filter(pk=email.pk).update(handoff_at=None)
            raise  # otherwise it may have left: the marker stays, and the sweep settles it as uncertain
        email = email_set_delivery(email_id=email.pk, status=Email.Delivery.SENT, esp_message_id=esp_message_id,
                                   detail=f"Handed to the mail backend for {len(recipients)} recipient{pluralize(len(recipients))}.")
    if bounced and email.delivery_status in (Email.Delivery.SENT, Email.Delivery.DELIVERED):
        email = email_set_delivery(email_id=email.pk, status=Email.Delivery.BOUNCED)
    Email.objects.filter(pk=email.pk).update(followup_due_at=None, handoff_at=None)
    return email


def on_tracking(sender, event, esp_name, **kwargs):
    """anymail `tracking` signal receiver: match by ESP message id and move the status."""
    status = TRACKING_STATUS.get(getattr(event, "event_type", ""))
    message_id = (getattr(event, "message_id", "") or "").strip("<>")
    if status is None or not message_id:
        return
    email_id = (Email.objects.filter(esp_message_id=message_id, direction=Email.Direction.OUTBOUND)
                .values_list("pk", flat=True).first())
    if email_id is None:
        logger.info("%s tracking event %s for unknown message %s", esp_name, event.event_type, message_id)
        return
    detail = f"{esp_name}: {event.event_type} {getattr(event, 'recipient', '') or ''} {getattr(event, 'description', '') or ''}"
    email_set_delivery(email_id=email_id, status=status, detail=detail.strip())
