from django.core.exceptions import ValidationError

from domains.models import Domain
from mailboxes.models import Group, Mailbox
from core.errors import NotFound
from core.tenancy import within_mailboxes


def mailbox_list(*, account, mailbox_ids=None):
    mailboxes = within_mailboxes(Mailbox.objects.filter(account=account), mailbox_ids, field="pk")
    return mailboxes.select_related("domain").prefetch_related("groups").order_by("domain__name", "local_part")


def access_mailbox(*, account, mailbox_id, mailbox_ids=None):
    """The account's mailbox with this id, or NotFound — the same answer for missing and foreign, and for one
    outside `mailbox_ids` (the mailboxes a limited token reaches; None: every one)."""
    try:
        return within_mailboxes(Mailbox.objects.select_related("domain"), mailbox_ids, field="pk").get(
            pk=mailbox_id, account=account)
    except (Mailbox.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No mailbox with this id exists in your account.")


def own_mailbox(*, account, mailbox, mailbox_ids=None):
    """A mailbox given as an object or an id, checked to be the account's (and among `mailbox_ids`, when given);
    NotFound otherwise."""
    if isinstance(mailbox, Mailbox):
        if mailbox.account_id != account.pk or (mailbox_ids is not None and mailbox.pk not in mailbox_ids):
            raise NotFound("No mailbox with this id exists in your account.")
        return mailbox
    return access_mailbox(account=account, mailbox_id=mailbox, mailbox_ids=mailbox_ids)


def mailbox_by_address(*, address):
    """The hosted mailbox for an address (sub-addresses user+tag@ resolve to user@), or None."""
    local, sep, domain = (address or "").strip().lower().rpartition("@")
    if not sep:
        return None
    local = local.split("+", 1)[0]
    # Only the verified holder of a name receives its mail (the shared domain is always verified).
    return (Mailbox.objects.select_related("domain", "account__plan")
            .filter(local_part=local, domain__name=domain, domain__status=Domain.Status.VERIFIED).first())


def group_list(*, account):
    return Group.objects.filter(account=account).prefetch_related("members__domain").order_by("name")


def access_group(*, account, group_id):
    try:
        return Group.objects.get(pk=group_id, account=account)
    except (Group.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No group with this id exists in your account.")


MAILBOX_LIST_FIELDS = ("id", "domain__name", "local_part", "display_name", "status", "forwarding_addresses",
                       "forward_keep_copy", "message_count", "unread_count", "storage_used", "created_at")


def mailbox_page(*, account, cursor=None, limit=50, mailbox_ids=None):
    """One keyset page of the account's mailboxes by address, domain then local part, as the dashboard lists them
    (the API's list; see core.pagination): an agent that takes the first one lands on the same one every time,
    not on the newest and emptiest. `mailbox_ids` limits it to a token's mailboxes."""
    from core.pagination import ordered_page

    mailboxes = within_mailboxes(Mailbox.objects.filter(account=account), mailbox_ids, field="pk")
    # Only the columns the list shows (mailboxes.operations.MailboxOut): of the domain, its name alone, not its
    # keys and verification state.
    mailboxes = mailboxes.select_related("domain").only(*MAILBOX_LIST_FIELDS)
    return ordered_page(mailboxes, cursor=cursor, limit=limit, fields=("domain__name", "local_part"))
