"""Forwarding to an address outside the account is confirmed by that address first.

When a mailbox is set to forward to an address that is not one of the account's own mailboxes, the
address gets one mail with a link; nothing is forwarded to it before its owner opens the link and
confirms (a button, so that link scanners which fetch every URL confirm nothing). The link's token is
a keyed hash of the request (id and time), so the task that mails it needs no secret in its arguments,
and only a hash of the token is stored. A confirmation holds for the whole account. The confirmation mail counts in the
account's send ledger like any other mail that leaves it.
"""

import base64
import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from domains.services import shared_domain_get
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.models import ForwardingConfirmation, Mailbox, SendRecord
from mailboxes.outbound.composition import build_message, dkim_sign, new_message_id
from mailboxes.outbound.ledger import send_reserve
from mailboxes.outbound.relay import relay_send
from mailboxes.selectors import mailbox_by_address
from core.errors import NotFound

# A pending confirmation is mailed again when the address is saved again after this long.
RESEND_AFTER = timedelta(hours=24)
SYSTEM_LOCAL_PART = "no-reply"


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _token(confirmation):
    message = f"forwarding-confirmation:{confirmation.pk}:{confirmation.requested_at.timestamp()}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_own_address(*, account, address):
    """Whether the address is one of the account's own hosted mailboxes (no confirmation needed)."""
    mailbox = mailbox_by_address(address=address)
    return mailbox is not None and mailbox.account_id == account.pk


def forwarding_allowed(*, account, address):
    """Whether mail of this account may be forwarded to the address now."""
    if is_own_address(account=account, address=address):
        return True
    return ForwardingConfirmation.objects.filter(account=account, address=address.lower(),
                                                 confirmed_at__isnull=False).exists()


def forwarding_status(*, mailbox):
    """[(address, state)] for the mailbox's forwarding addresses: "own mailbox", "confirmed" or "waiting"."""
    confirmed = dict(ForwardingConfirmation.objects.filter(account_id=mailbox.account_id)
                     .values_list("address", "confirmed_at"))
    return [(address, "own mailbox" if is_own_address(account=mailbox.account, address=address)
             else "confirmed" if confirmed.get(address.lower()) else "waiting for confirmation")
            for address in mailbox.forwarding_addresses]


def forwarding_confirmations_request(*, account, addresses):
    """Ask each outside address among `addresses` to confirm, unless it has (or was just asked).

    Call inside the transaction that saves the addresses: the confirmation mails are reserved in the
    send ledger now (LimitReached refuses the change). Returns the ids of the confirmations for the
    caller to mail after commit (confirmation_mail_send, through its task).
    """
    to_mail = []
    for address in dict.fromkeys(a.lower() for a in addresses):
        if is_own_address(account=account, address=address):
            continue
        found = ForwardingConfirmation.objects.select_for_update().filter(account=account, address=address).first()
        if found is not None and (found.is_confirmed or found.requested_at > timezone.now() - RESEND_AFTER):
            continue
        send_reserve(account=account, kind=SendRecord.Kind.SYSTEM, recipients=[address])
        is_new = found is None
        found = found or ForwardingConfirmation(account=account, address=address)
        found.requested_at = timezone.now()
        found.token_hash = _hash(_token(found))  # a new request time: the earlier link stops working
        found.save(force_insert=is_new)
        to_mail.append(str(found.pk))
    return to_mail


def forwarding_confirmation_get(*, token):
    """The pending or confirmed request behind a link's token, or NotFound."""
    found = ForwardingConfirmation.objects.select_related("account").filter(token_hash=_hash(token or "")).first()
    if found is None:
        raise NotFound("This confirmation link is not valid. Ask for a new one from the mailbox's settings.")
    return found


def forwarding_confirm(*, token):
    """Confirm the address behind a link's token; idempotent."""
    with transaction.atomic():
        found = forwarding_confirmation_get(token=token)
        if found.confirmed_at is None:
            found.confirmed_at = timezone.now()
            found.save(update_fields=["confirmed_at"])
    return found


def confirmation_mail_send(*, confirmation_id, mailbox_id):
    """Send the confirmation mail (the task's work): from the shared domain, DKIM-signed."""
    found = ForwardingConfirmation.objects.filter(pk=confirmation_id).first()
    if found is None or found.is_confirmed:
        return  # confirmed meanwhile, or the address was dropped
    token = _token(found)
    mailbox = Mailbox.objects.filter(pk=mailbox_id).select_related("domain").first()
    source = mailbox.address if mailbox is not None else "a QMailing mailbox"
    shared = shared_domain_get()
    sender = f"{SYSTEM_LOCAL_PART}@{shared.name}"
    link = settings.QMAILING_BASE_URL + reverse("mailboxes:forwarding-confirm", args=[token])
    text = (f"{source} asked to forward its mail to {found.address}.\n\n"
            f"If you want to receive it, open this link and confirm:\n{link}\n\n"
            "If you did not expect this, ignore this mail: nothing is forwarded to you until you confirm.\n")
    raw = build_message(sender=("QMailing", sender), to=[("", found.address)], cc=[],
                        subject=f"Confirm forwarding from {source}", text=text, html="", attachments=[],
                        message_id=new_message_id(domain_name=shared.name))
    signed = dkim_sign(raw=raw, domain=shared)
    if mailbox_by_address(address=found.address) is not None:
        deliver_hosted(raw=signed, recipients=[found.address], envelope_from=sender)
    else:
        relay_send(raw=signed, envelope_from=sender, recipients=[found.address])
