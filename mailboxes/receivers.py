"""What mailboxes does when an account is created, closed or deleted, or a token issued (accounts.signals), in the
sender's transaction."""

import re

from django.dispatch import receiver

from accounts.signals import account_closing, account_created, account_deleting, token_issued
from domains.services import shared_domain_get
from mailboxes.addresses import ROLE_NAMES, SYSTEM_NAMES
from mailboxes.models import Draft, Mailbox
from mailboxes.services import mailbox_create, mailbox_delete
from mailboxes.store.drafts import draft_delete
from mailboxes.token_limits import account_mailboxes_chosen, token_limit_set


def _first_free_local_part(base, domain):
    base = re.sub(r"[^a-z0-9._-]", "", base.lower())
    base = re.sub(r"\.{2,}", ".", base)[:48].strip(".") or "user"  # cut first: the cut may end on a dot
    if base in ROLE_NAMES or base in SYSTEM_NAMES:
        base = f"{base}-user"
    candidate, n = base, 1
    while Mailbox.objects.filter(domain=domain, local_part=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


@receiver(account_created, dispatch_uid="mailboxes.first_mailbox")
def first_mailbox(*, account, email, full_name, **kwargs):
    """Every new account gets one mailbox on the shared domain, named after its owner's address."""
    shared = shared_domain_get()
    mailbox_create(account=account, domain=shared, local_part=_first_free_local_part(email.split("@")[0], shared),
                   display_name=full_name)


@receiver(account_closing, dispatch_uid="mailboxes.suspend_on_close")
def suspend_mailboxes(*, account, **kwargs):
    """A closing account's mailboxes are suspended: new mail is refused at the door."""
    account.mailboxes.update(status=Mailbox.Status.SUSPENDED)


@receiver(account_deleting, dispatch_uid="mailboxes.delete_with_account")
def delete_mail(*, account, **kwargs):
    """Drafts and mailboxes go one by one, each with its files (a cascade would leave the files behind)."""
    for draft in Draft.objects.filter(account=account).only("pk"):
        draft_delete(draft=draft)
    for mailbox in account.mailboxes.all():
        mailbox_delete(mailbox=mailbox)


@receiver(token_issued, dispatch_uid="mailboxes.token_mailbox_limit")
def limit_issued_token(*, access_token, account, mailbox_ids, **kwargs):
    """A token issued with chosen mailboxes gets its limit in the token's transaction: a mailbox that is not the
    account's refuses the whole issue."""
    if mailbox_ids is not None:
        token_limit_set(token=access_token,
                        mailboxes=account_mailboxes_chosen(account=account, mailbox_ids=mailbox_ids))
