"""Delivery of one message to mailboxes hosted here, with an outcome for every recipient.

Every caller (SMTP, ESP webhooks, local sends, forwarding) must know which addresses really got a
copy: an address that is unknown, suspended or out of storage is refused alone, with an SMTP-style
reason the caller can show to the sender without naming anything of the recipient's account.
"""

from dataclasses import dataclass, field

from accounts.models import Account
from mailboxes.inbound.ingest import MailboxUnavailable, email_ingest, ingest_batch
from mailboxes.models import Email
from mailboxes.inbound.parsing import MAX_DEPTH, MAX_PARTS, parse_message
from mailboxes.selectors import mailbox_by_address
from core.errors import LimitReached

NOT_HOSTED = "550 5.1.1 No such mailbox here"
SUSPENDED = "550 5.2.1 Mailbox disabled, not accepting messages"
STORAGE_FULL = "552 5.2.2 Mailbox storage is full"
TOO_COMPLEX = (f"554 5.6.0 Message structure too complex: more than {MAX_PARTS} MIME parts "
               f"or nesting deeper than {MAX_DEPTH}")


@dataclass
class HostedDelivery:
    stored: dict[str, Email] = field(default_factory=dict)  # address → its copy (sub-addresses share one)
    refused: dict[str, str] = field(default_factory=dict)  # address → reason

    @property
    def emails(self):
        return list({email.pk: email for email in self.stored.values()}.values())


def accounts_lock(*, account_ids):
    """Lock these account rows in one statement, in id order.

    Every transaction that stores mail for several accounts takes their locks here first, so two
    deliveries crosswise (A→B while B→A, SMTP [A, B] while [B, A]) queue up instead of deadlocking.
    Later locks on the same rows (storage check, event cursor) are then already held.
    """
    ids = set(account_ids)
    if ids:  # ORDER BY before FOR UPDATE: PostgreSQL locks the rows in that order
        list(Account.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def deliver_hosted(*, raw: bytes, recipients, envelope_from: str = "", refuse_over_caps=False,
                   authentication=None, content_digest=None, parsed=None, mailboxes=None) -> HostedDelivery:
    """Store one copy per distinct hosted, active mailbox among the recipients; refuse the rest per address.

    A mailbox whose account storage cannot hold the message is refused alone (its savepoint rolls
    back); the others keep their copy. Any other error rolls back the whole delivery. With
    `refuse_over_caps` (mail from the outside world) a message beyond the MIME part or nesting caps is
    refused for every recipient; otherwise it is stored with the cap recorded as a defect.
    `authentication` (mail from the outside world) is stored on every copy; see inbound.authentication.
    `content_digest`: SHA-256 of the message as its sender sent it, before our trace headers (SMTP), so a
    sender's retry is recognised (email_ingest); by default that of `raw`. `parsed`: the message's parse when
    the caller has it already (a send: parsing a large message again costs several times its size).
    `mailboxes`: address → Mailbox the caller looked up already (SMTP, at RCPT), used instead of a second lookup;
    whether each mailbox still exists and is active is read again under the account lock, as it is stored.

    One target mailbox (most mail) is one transaction of email_ingest's own: its storage check takes the only
    account lock. Several are one transaction with a savepoint each, their accounts locked first.
    """
    outcome, targets, known = HostedDelivery(), {}, mailboxes or {}
    for address in dict.fromkeys(recipients):
        mailbox = known[address] if address in known else mailbox_by_address(address=address)
        if mailbox is None:
            outcome.refused[address] = NOT_HOSTED
        elif not mailbox.is_active:
            outcome.refused[address] = SUSPENDED
        else:
            targets.setdefault(mailbox.pk, (mailbox, []))[1].append(address)
    if not targets:
        return outcome
    parsed = parsed or parse_message(bytes(raw))
    if refuse_over_caps and parsed.over_structure_caps:
        for _, addresses in targets.values():
            outcome.refused.update(dict.fromkeys(addresses, TOO_COMPLEX))
        return outcome
    if len(targets) == 1:
        _deliver_one(outcome, *next(iter(targets.values())), raw=raw, parsed=parsed, authentication=authentication,
                     content_digest=content_digest)
        return outcome
    with ingest_batch():
        accounts_lock(account_ids=[mailbox.account_id for mailbox, _ in targets.values()])
        for mailbox, addresses in targets.values():
            _deliver_one(outcome, mailbox, addresses, raw=raw, parsed=parsed, authentication=authentication,
                         content_digest=content_digest)
    return outcome


def _deliver_one(outcome, mailbox, addresses, *, raw, parsed, authentication, content_digest):
    """One mailbox's copy into `outcome`: stored, or refused alone (its savepoint or transaction rolled back)."""
    try:
        email = email_ingest(mailbox=mailbox, raw=raw, parsed=parsed, authentication=authentication,
                             content_digest=content_digest, require_active=True)
    except LimitReached:
        outcome.refused.update(dict.fromkeys(addresses, STORAGE_FULL))
        return
    except MailboxUnavailable as gone:
        outcome.refused.update(dict.fromkeys(addresses, SUSPENDED if gone.suspended else NOT_HOSTED))
        return
    outcome.stored.update(dict.fromkeys(addresses, email))
