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
from django.db import transaction

from mailboxes.composition import dkim_sign
from mailboxes.models import Email
from mailboxes.relay import relay_send
from mailboxes.selectors import mailbox_by_address

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


def schedule_forward(*, email):
    """Called by ingest inside its transaction: forward this received email after commit."""
    if email.direction != Email.Direction.INBOUND or not email.mailbox.forwarding_addresses:
        return
    from mailboxes.tasks import email_forward_task

    email_id = str(email.id)
    transaction.on_commit(lambda: email_forward_task.delay(email_id))


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


def email_forward(*, email_id, local_done=False):
    """Send a received email on to its mailbox's forwarding addresses (hosted ones directly).

    When the mailbox keeps no copy, the stored email is purged once every hand-off succeeded.
    """
    from mailboxes.ingest import deliver_inbound
    from mailboxes.mail_services import email_purge

    email = Email.objects.filter(pk=email_id).select_related("mailbox__domain").first()
    if email is None:
        return
    mailbox = email.mailbox
    targets = [a for a in mailbox.forwarding_addresses if a.lower() != mailbox.address.lower()]
    with email.raw.open("rb") as handle:
        raw = forwarded_bytes(raw=handle.read(), mailbox=mailbox)
    if raw is None or not targets:
        logger.info("not forwarding %s: it already passed through %s", email_id, mailbox.address)
        return
    local = [a for a in targets if mailbox_by_address(address=a) is not None]
    if local and not local_done:
        with transaction.atomic():
            deliver_inbound(raw=raw, recipients=local, envelope_from=mailbox.address)
    for address in (a for a in targets if a not in local):
        # One message per external address: forwarding targets never see each other.
        try:
            relay_send(raw=raw, envelope_from=mailbox.address, recipients=[address])
        except Exception as exc:
            exc.local_done = True
            raise
    if not mailbox.forward_keep_copy:
        email_purge(email=email)
