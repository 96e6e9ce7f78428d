"""Automatic forwarding of received mail to a mailbox's forwarding addresses.

The original message is re-sent unchanged (its own DKIM signature stays valid) with one header added
on top, `X-QMailing-Loop`, naming the forwarding mailbox by a keyed hash. A mailbox never forwards a
message that already carries its own marker, so A → B → A stops at A instead of circling forever.

Forwarding is not a relay for anyone's mail: an address outside the account receives copies only
after confirming (outbound.confirmation); every copy that leaves the account counts in the send ledger,
per recipient; the envelope sender is rewritten with SRS; mail that failed DMARC or sits in SPAM is
never forwarded; and a mailbox whose domain is no longer verified for its account forwards nothing.
In each of those cases the mailbox keeps its copy.
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
from mailboxes.models import Email, Folder, ForwardDelivery, SendRecord
from mailboxes.outbound.confirmation import forwarding_allowed, is_own_address
from mailboxes.outbound.ledger import send_reserve, sending_domain
from mailboxes.outbound.relay import permanent_failure, relay_refused, relay_send
from mailboxes.outbound.srs import srs_forward
from core.errors import AppError
from mailboxes.selectors import mailbox_by_address
from mailboxes.store.services import email_purge

logger = logging.getLogger(__name__)

LOOP_HEADER = b"X-QMailing-Loop"
MAX_LOOP_MARKERS = 10  # a longer chain of forwards is a loop we cannot see, so it stops too
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<([^<>\s]*)>", re.IGNORECASE | re.MULTILINE)


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
    fields = {"status": status, "completed_at": timezone.now(), "handing_off": False}
    if error is not None:
        fields["error"] = error[:2000]
    ForwardDelivery.objects.filter(pk__in=[r.pk for r in records]).update(**fields)


def _claim_hand_off(record):
    """Mark the record "handing off" just before the relay call; False when it is not ours to send (done, or
    marked by another worker, or by one that died mid-call: mailboxes.work settles that as uncertain)."""
    return bool(ForwardDelivery.objects.filter(pk=record.pk, status=ForwardDelivery.Status.PENDING, handing_off=False)
                .update(handing_off=True, attempts=F("attempts") + 1, attempted_at=timezone.now()))


def _note_error(record, detail, *, handed_off=False):
    # Refused or never reached: nothing left, the next attempt may send. Otherwise (a timeout after DATA) it
    # may have left: the record stays "handing off" and the sweep settles it as uncertain, never re-sent.
    ForwardDelivery.objects.filter(pk=record.pk).update(error=detail[:2000], handing_off=handed_off)


def _forward_refusal(email):
    """Why this email must not be forwarded to anyone, or None."""
    if email.folder == Folder.SPAM:
        return "it is marked as spam"
    authentication = email.authentication or {}
    if authentication.get("verdict") == "fail" or (authentication.get("dmarc") or {}).get("result") == "fail":
        return "it failed DMARC (the From address is forged or not authorised)"
    return None


def envelope_sender(*, raw, mailbox):
    """The forwarded copy's envelope sender: the original one (Return-Path) rewritten with SRS.

    A bounce (null sender) or a message without a Return-Path is sent from the mailbox itself.
    """
    match = _HEADER_END.search(raw)
    found = _RETURN_PATH.search(raw[: match.start()] if match else raw)
    original = found.group(1).decode("ascii", "replace") if found else ""
    return srs_forward(original, forwarding_domain=mailbox.domain.name) or mailbox.address


def _reserve(*, record, email, mailbox):
    """Count a copy that leaves the account in the send ledger, once per address and email.

    Returns the reason it may not be sent (the plan's sends are used up), or None.
    """
    if is_own_address(account=mailbox.account, address=record.recipient):
        return None
    already = SendRecord.objects.filter(account_id=mailbox.account_id, kind=SendRecord.Kind.FORWARD,
                                        email_id=email.pk, recipient=record.recipient[:320]).exists()
    if already:  # a retry: the copy was counted before the first attempt
        return None
    try:
        send_reserve(account=mailbox.account, kind=SendRecord.Kind.FORWARD, recipients=[record.recipient],
                     email_id=email.pk)
    except AppError as exc:
        return exc.detail
    return None


def _forward_hosted(*, record, raw, mailbox, sender):
    """Store the message in one hosted mailbox; returns the error to retry on, or None.

    A suspended or full mailbox is a permanent refusal for that address alone: the record fails
    with the reason, so the forwarding mailbox keeps its copy even without forward_keep_copy.
    """
    try:
        # Claimed, stored and marked in one transaction: a hosted copy is made exactly once, even when two
        # workers run the same forward (the second waits on the row lock, then finds it done).
        with ingest_batch():
            if not ForwardDelivery.objects.filter(
                    pk=record.pk, status=ForwardDelivery.Status.PENDING).update(
                    attempts=F("attempts") + 1, attempted_at=timezone.now()):
                return None
            outcome = deliver_hosted(raw=raw, recipients=[record.recipient], envelope_from=sender)
            if record.recipient in outcome.stored:
                _complete([record], status=ForwardDelivery.Status.SENT)
            else:
                _complete([record], status=ForwardDelivery.Status.FAILED,
                          error=f"{record.recipient}: {outcome.refused.get(record.recipient, 'not delivered')}")
    except Exception as exc:
        _note_error(record, f"{type(exc).__name__}: {exc}")
        return exc
    return None


def _forward_relayed(*, record, raw, mailbox, sender):
    """Hand the message to the relay for one address, at most once; returns the error to retry on, or None."""
    if not _claim_hand_off(record):
        return None
    try:
        relay_send(raw=raw, envelope_from=sender, recipients=[record.recipient])
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if permanent_failure(exc):
            _complete([record], status=ForwardDelivery.Status.FAILED, error=detail)
            return None
        _note_error(record, detail, handed_off=not relay_refused(exc))
        return exc
    _complete([record], status=ForwardDelivery.Status.SENT)
    return None


def email_forward(*, email_id):
    """Send a received email on to its mailbox's forwarding addresses (hosted ones directly).

    Progress is recorded per address (ForwardDelivery), so running it again (a retry, a redelivered
    task) sends only to addresses not done yet. A temporary error (relay or local store) is raised
    after every other address had its turn; a permanent refusal (a relay 5xx, a hosted mailbox that
    is suspended or full, the plan's sends used up) fails that address alone. Addresses still waiting
    for their confirmation get nothing. When the mailbox keeps no copy, the stored email is purged
    once every address has it.
    """
    email = Email.objects.filter(pk=email_id).select_related("mailbox__domain", "mailbox__account__plan").first()
    if email is None:
        return
    mailbox = email.mailbox
    refusal = _forward_refusal(email)
    if refusal is None:
        try:
            sending_domain(account=mailbox.account, mailbox=mailbox)
        except AppError as exc:
            refusal = exc.detail
    if refusal is not None:
        logger.info("not forwarding %s from %s: %s", email_id, mailbox.address, refusal)
        Email.objects.filter(pk=email.pk).update(followup_due_at=None)
        return
    configured = list(dict.fromkeys(a for a in mailbox.forwarding_addresses if a.lower() != mailbox.address.lower()))
    targets = [a for a in configured if forwarding_allowed(account=mailbox.account, address=a)]
    with email.raw.open("rb") as handle:
        original = handle.read()
    raw = forwarded_bytes(raw=original, mailbox=mailbox)
    if raw is None or not targets:
        logger.info("not forwarding %s: it already passed through %s, or no address is confirmed", email_id,
                    mailbox.address)
        Email.objects.filter(pk=email.pk).update(followup_due_at=None)
        return
    sender = envelope_sender(raw=original, mailbox=mailbox)
    hosted = {a for a in targets if mailbox_by_address(address=a) is not None}
    records = _forward_records(email=email, targets=targets, hosted=hosted)
    errors = []
    # One message per address (forwarding targets never see each other), each with its own outcome.
    for record in (r for r in records if r.status == ForwardDelivery.Status.PENDING):
        over_limit = _reserve(record=record, email=email, mailbox=mailbox)
        if over_limit is not None:
            _complete([record], status=ForwardDelivery.Status.FAILED, error=f"{record.recipient}: {over_limit}")
            continue
        forward = _forward_hosted if record.is_hosted else _forward_relayed
        errors.append(forward(record=record, raw=raw, mailbox=mailbox, sender=sender))
    errors = [e for e in errors if e is not None]
    if errors:
        raise errors[0]
    if email.forward_deliveries.filter(status=ForwardDelivery.Status.PENDING).exists():
        return  # an address is being handed off by another worker; the sweep comes back for it
    Email.objects.filter(pk=email.pk).update(followup_due_at=None)
    everyone_has_it = len(targets) == len(configured) and not (
        email.forward_deliveries.filter(recipient__in=targets).exclude(status=ForwardDelivery.Status.SENT).exists())
    if not mailbox.forward_keep_copy and everyone_has_it:
        email_purge(email=email)


def forward_give_up(*, email_id, detail):
    """The retries are used up: every address still waiting fails with the last error (the mailbox keeps its
    copy); one still "handing off" is left for the sweep to settle as uncertain. Nothing is left pending."""
    waiting = ForwardDelivery.objects.filter(email_id=email_id, status=ForwardDelivery.Status.PENDING, handing_off=False)
    waiting.update(status=ForwardDelivery.Status.FAILED, completed_at=timezone.now(),
                   error=f"Gave up after retries: {detail}"[:2000])
    Email.objects.filter(pk=email_id).update(followup_due_at=None)
