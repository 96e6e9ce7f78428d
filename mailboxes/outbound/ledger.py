"""Who may send and how much: the sending domain check and the send ledger.

A mailbox sends (and forwards) only while its domain is verified and held by its account.

Every recipient of every message that leaves an account is one SendRecord: sends, forwarded copies,
forwarding confirmation mails. The rows are the account's own and outlive the mail they record, so
deleting a mailbox (and the SENT copies in it) gives no sends back.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from domains.models import Domain
from mailboxes.models import SendRecord
from core.errors import Forbidden, LimitReached

SEND_WINDOW = timedelta(hours=24)


def sends_in_window(*, account) -> int:
    """Recipients sent to in the last 24 hours (the window rolls; no reset at midnight)."""
    return SendRecord.objects.filter(account=account, created_at__gte=timezone.now() - SEND_WINDOW).count()


def send_reserve(*, account, kind, recipients, email_id=None):
    """Take one send per recipient from the account's allowance (the SendRecords, returned), or raise
    LimitReached taking none.

    Locks the account row, so two sends at once cannot both squeeze into the last slots; call it
    inside the transaction that sends, so a send that rolls back gives its slots back.
    """
    recipients = list(recipients)
    with transaction.atomic():
        locked = Account.objects.select_for_update().select_related("plan").get(pk=account.pk)
        allowed, used = locked.plan.sends_per_day, sends_in_window(account=locked)
        if used + len(recipients) > allowed:
            raise LimitReached(
                f"Your {locked.plan.name} plan allows {allowed} sent emails per day, each recipient counting as one, "
                f"and {used} were sent in the last 24 hours; this needs {len(recipients)} more. Wait until earlier "
                "sends age out of that window, or upgrade your plan.",
                limit="sends_per_day",
            )
        return SendRecord.objects.bulk_create([
            SendRecord(account=locked, kind=kind, recipient=address[:320], email_id=email_id) for address in recipients])


def sending_domain(*, account, mailbox):
    """The mailbox's domain must be verified now, and held by this account (a lost domain sends nothing)."""
    domain = Domain.objects.get(pk=mailbox.domain_id)  # fresh: the cached one may predate a DNS check
    if not domain.is_shared and (domain.status != Domain.Status.VERIFIED or domain.account_id != account.pk):
        raise Forbidden(f"{domain.name} is not verified for your account, so {mailbox.address} cannot send. "
                        "Publish its DNS records and run verification again.", code="domain_not_verified")
    return domain
