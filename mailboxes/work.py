"""Follow-up work of stored mail, durable the way an MTA's queue file is: recorded first, woken after.

Every piece of work that follows a change is written in the same transaction as the change:
- outside delivery of a SENT copy: `Email.followup_due_at` with `delivery_recipients` (status queued);
- forwarding of a received email: `Email.followup_due_at` (progress per address in ForwardDelivery);
- attachment text: `Attachment.extraction = pending`;
- webhooks: a WebhookDelivery row per endpoint (webhooks.delivery).
The Celery message sent after commit (core.enqueue.enqueue_on_commit) is only a wake-up and may be
lost: the broker away, a crash between commit and enqueue, a worker killed. A failed enqueue is logged and
never undoes the commit. Every QMAILING_SWEEP_SECONDS, beat's sweep (mailboxes.tasks.work_sweep) enqueues
again every job left undone for longer than QMAILING_STUCK_AFTER_SECONDS (`work_due`). Tasks claim their
work with conditional updates, so a job enqueued twice is done once. (Closed accounts have the same kind of
record and sweep: accounts.services.accounts_deletion_due.)

At most once per recipient: the relay call is preceded by a "handing off" marker (`Email.handoff_at`,
`ForwardDelivery.handing_off`) and followed by the outcome; an error that does not prove the relay refused
(a timeout after DATA) leaves the marker. A job found still marked after QMAILING_HANDOFF_STUCK_SECONDS
(`handoffs_settle`) was interrupted between the two: the relay may or may not have taken the
message, and neither SMTP relays nor anymail's ESP backends let us ask afterwards (the ESP message id is
only known from the call's answer), so it is marked `uncertain` with a sentence saying so, and never
re-sent blindly. Sending twice to a customer's client is worse than a visible "uncertain" a person can act on.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mailboxes.inbound.extraction import emails_with_stuck_extraction
from mailboxes.models import Email, ForwardDelivery
from mailboxes.outbound.delivery import email_set_delivery

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500
UNCERTAIN_DETAIL = ("The worker stopped while handing this message to the mail backend, so it may or may not have "
                    "left. It is not sent again automatically, so that nobody gets it twice: check with the "
                    "recipients, or send it again.")


def stuck_before(now=None):
    return (now or timezone.now()) - timedelta(seconds=settings.QMAILING_STUCK_AFTER_SECONDS)


def handoffs_settle(*, now=None):
    """Mark uncertain every hand-off still "handing off" QMAILING_HANDOFF_STUCK_SECONDS after it began (the worker
    stopped mid-call): an outside delivery gets status `uncertain` (and its event), a forward's record too.
    Never re-sent. Returns how many."""
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.QMAILING_HANDOFF_STUCK_SECONDS)
    settled = 0
    for email_id in list(Email.objects.filter(delivery_status=Email.Delivery.QUEUED, handoff_at__lt=before)
                         .values_list("pk", flat=True)[:SWEEP_BATCH]):
        email_set_delivery(email_id=email_id, status=Email.Delivery.UNCERTAIN, detail=UNCERTAIN_DETAIL)
        Email.objects.filter(pk=email_id).update(followup_due_at=None, handoff_at=None)
        settled += 1
    interrupted = ForwardDelivery.objects.filter(status=ForwardDelivery.Status.PENDING, handing_off=True,
                                                 attempted_at__lt=before)
    return settled + interrupted.update(status=ForwardDelivery.Status.UNCERTAIN, handing_off=False, completed_at=now,
                                        error=UNCERTAIN_DETAIL)


def work_due(*, now=None):
    """The ids of the jobs left undone longer than QMAILING_STUCK_AFTER_SECONDS, each made due again only after
    another stuck period (so a sweep never piles wake-ups onto a slow worker): {"deliveries": [...],
    "forwards": [...], "extractions": [...]}. mailboxes.tasks.work_sweep enqueues them."""
    now = now or timezone.now()
    before = stuck_before(now)
    due = {"deliveries": [], "forwards": [], "extractions": []}
    for email_id, direction, status in list(Email.objects.filter(followup_due_at__lt=before)
                                            .order_by("followup_due_at")
                                            .values_list("pk", "direction", "delivery_status")[:SWEEP_BATCH]):
        if direction == Email.Direction.OUTBOUND and status != Email.Delivery.QUEUED:
            Email.objects.filter(pk=email_id).update(followup_due_at=None)  # handed off; only the mark was left
            continue
        Email.objects.filter(pk=email_id).update(followup_due_at=now)
        due["deliveries" if direction == Email.Direction.OUTBOUND else "forwards"].append(str(email_id))
    due["extractions"] = [str(email_id) for email_id in emails_with_stuck_extraction(before=before)]
    return due
