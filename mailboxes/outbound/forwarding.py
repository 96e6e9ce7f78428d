"""Automatic forwarding of received mail to a mailbox's forwarding addresses.

The original message is re-sent unchanged (its own DKIM signature stays valid) with one header added
on top, `X-QMailing-Loop`, naming the forwarding mailbox by a keyed hash. A mailbox never forwards a
message that already carries its own marker, so A → B → A stops at A instead of circling forever.
"""

import hashlib
import hmac
import logging
import re

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from mailboxes.outbound.composition import dkim_sign
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.inbound.ingest import ingest_batch
from mailboxes.models import Email, ForwardDelivery
from mailboxes.outbound.relay import permanent_failure, relay_send
from mailboxes.selectors import mailbox_by_address
from mailboxes.store.services import email_purge

logger = logging.getLogger(__name__)

LOOP_HEADER = b"X-QMailing-Loop"
MAX_LOOP_MARKERS = 10  # a longer chain of forwards is a loop we cannot see, so it stops too
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def loop_marker(mailbox):
    digest = hmac.new(settings.SECRET_KEY.encode(), f"forward:{mailbox.pk}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def _loop_markers(raw):
    match = _HEADER_END.search(raw)
    head = raw[: match.start()] if match else raw
    pattern = re.compile(rb"^" + LOOP_HEADER + rb":[ \t]*([0-9a-f]+)", re.IGNORECASE | re.MULTILINE)
    return [m.group(1).decode() for m in pattern.finditer(head)]


def forwarded_bytes(*, raw, mailbox):
    """The message to forward (marker added, signed for the mailbox's domain), or None when it would loop."""
    markers = _loop_markers(raw)
    if loop_marker(mailbox) in markers or len(markers) >= MAX_LOOP_MARKERS:
        return None
    newline = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    marked = LOOP_HEADER + b": " + loop_marker(mailbox).encode() + newline + raw
    try:
        return dkim_sign(raw=marked, domain=mailbox.domain)
    except Exception:  # a message too broken to sign is still forwarded, unsigned by us
        logger.warning("could not DKIM-sign forward of a message in %s", mailbox.pk)
        return marked


def _forward_records(*, email, targets, hosted):
    """The email's per-address records, created (pending) for any target that has none yet."""
    ForwardDelivery.objects.bulk_create(
        [ForwardDelivery(email=email, recipient=address, is_hosted=address in hosted) for address in targets],
        ignore_conflicts=True,
    )
    return list(ForwardDelivery.objects.filter(email=email, recipient__in=targets))


def _complete(records, *, status, error=None):
    # A sent record keeps the error of an earlier attempt: it tells why the address got it late.
    fields = {"status": status, "completed_at": timezone.now()}
    if error is not None:
        fields["error"] = error[:2000]
    ForwardDelivery.objects.filter(pk__in=[r.pk for r in records]).update(**fields)


def _attempt(record):
    # Recorded before the hand-off, so a worker killed mid-send leaves a trace.
    ForwardDelivery.objects.filter(pk=record.pk).update(attempts=F("attempts") + 1, attempted_at=timezone.now())


def _note_error(record, detail):
    ForwardDelivery.objects.filter(pk=record.pk).update(error=detail[:2000])


def _forward_hosted(*, record, raw, mailbox):
    """Store the message in one hosted mailbox; returns the error to retry on, or None.

    A suspended or full mailbox is a permanent refusal for that address alone: the record fails
    with the reason, so the forwarding mailbox keeps its copy even without forward_keep_copy.
    """
    _attempt(record)
    try:
        # Stored and marked in one transaction: a hosted copy is made exactly once.
        with ingest_batch():
            outcome = deliver_hosted(raw=raw, recipients=[record.recipient], envelope_from=mailbox.address)
            if record.recipient in outcome.stored:
                _complete([record], status=ForwardDelivery.Status.SENT)
            else:
                _complete([record], status=ForwardDelivery.Status.FAILED,
                          error=f"{record.recipient}: {outcome.refused.get(record.recipient, 'not delivered')}")
    except Exception as exc:
        _note_error(record, f"{type(exc).__name__}: {exc}")
        return exc
    return None


def _forward_relayed(*, record, raw, mailbox):
    """Hand the message to the relay for one address; returns the error to retry on, or None."""
    _attempt(record)
    try:
        relay_send(raw=raw, envelope_from=mailbox.address, recipients=[record.recipient])
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if permanent_failure(exc):
            _complete([record], status=ForwardDelivery.Status.FAILED, error=detail)
            return None
        _note_error(record, detail)
        return exc
    _complete([record], status=ForwardDelivery.Status.SENT)
    return None


def email_forward(*, email_id):
    """Send a received email on to its mailbox's forwarding addresses (hosted ones directly).

    Progress is recorded per address (ForwardDelivery), so running it again (a retry, a redelivered
    task) sends only to addresses not done yet. A temporary error (relay or local store) is raised
    after every other address had its turn; a permanent refusal (a relay 5xx, a hosted mailbox that
    is suspended or full) fails that address alone. When the mailbox keeps no copy, the stored email
    is purged once every address has it.
    """
    email = Email.objects.filter(pk=email_id).select_related("mailbox__domain").first()
    if email is None:
        return
    mailbox = email.mailbox
    targets = list(dict.fromkeys(a for a in mailbox.forwarding_addresses if a.lower() != mailbox.address.lower()))
    with email.raw.open("rb") as handle:
        raw = forwarded_bytes(raw=handle.read(), mailbox=mailbox)
    if raw is None or not targets:
        logger.info("not forwarding %s: it already passed through %s", email_id, mailbox.address)
        return
    hosted = {a for a in targets if mailbox_by_address(address=a) is not None}
    records = _forward_records(email=email, targets=targets, hosted=hosted)
    pending = [r for r in records if r.status == ForwardDelivery.Status.PENDING]
    # One message per address (forwarding targets never see each other), each with its own outcome.
    errors = [(_forward_hosted if r.is_hosted else _forward_relayed)(record=r, raw=raw, mailbox=mailbox)
              for r in pending]
    errors = [e for e in errors if e is not None]
    if errors:
        raise errors[0]
    everyone_has_it = not (email.forward_deliveries.filter(recipient__in=targets)
                           .exclude(status=ForwardDelivery.Status.SENT).exists())
    if not mailbox.forward_keep_copy and everyone_has_it:
        email_purge(email=email)
