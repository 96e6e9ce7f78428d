from django.db import IntegrityError, transaction
from django.template.defaultfilters import pluralize

from accounts.models import Account
from mailboxes.addresses import ROLE_NAMES, SYSTEM_NAMES, normalize_address, normalize_local_part
from mailboxes.models import Group, Mailbox
from mailboxes.outbound.composition import has_control_characters
from mailboxes.outbound.confirmation import forwarding_confirmations_request
from mailboxes.store.services import email_purge
from mailboxes.tasks import forwarding_confirmation_send_task
from core.enqueue import enqueue_on_commit
from core.errors import Conflict, Invalid, LimitReached, NotFound
from events.models import EventType
from events.services import event_publish

MAX_FORWARDING_ADDRESSES = 10


def _clean_forwarding(addresses, *, own_address):
    cleaned = []
    for raw in addresses or ():
        address = normalize_address(raw, field="forwarding_addresses")
        if address.lower() == own_address.lower():
            raise Invalid("A mailbox cannot forward to itself.", field="forwarding_addresses")
        if address.lower() not in (a.lower() for a in cleaned):
            cleaned.append(address)
    if len(cleaned) > MAX_FORWARDING_ADDRESSES:
        raise Invalid(f"At most {MAX_FORWARDING_ADDRESSES} forwarding addresses per mailbox.", field="forwarding_addresses")
    return cleaned


def _clean_display_name(display_name):
    """The name shown in From: one line, no control character, raw or inside an encoded word."""
    display_name = (display_name or "").strip()
    if len(display_name) > 120 or has_control_characters(display_name):
        raise Invalid("The display name must be one line of at most 120 characters, without control characters.",
                      field="display_name")
    return display_name


def mailbox_create(*, account, domain, local_part, display_name="", forwarding_addresses=(), forward_keep_copy=True):
    """Create a mailbox on the account's verified domain (or the shared domain), within the plan."""
    local_part = normalize_local_part(local_part)
    if not domain.is_shared and domain.account_id != account.pk:
        raise NotFound("No domain with this id exists in your account.")
    if not domain.is_verified:
        raise Invalid(f"{domain.name} is not verified yet. Publish its DNS records and run verification first.", field="domain", code="domain_not_verified")
    if local_part in SYSTEM_NAMES or (domain.is_shared and local_part in ROLE_NAMES):
        raise Invalid(f"{local_part}@{domain.name} is reserved. Choose another name.", field="local_part", code="address_reserved")
    display_name = _clean_display_name(display_name)
    address = f"{local_part}@{domain.name}"
    forwarding = _clean_forwarding(forwarding_addresses, own_address=address)

    with transaction.atomic():
        # The lock serialises concurrent creates of one account so the limit cannot be overrun.
        account = Account.objects.select_for_update().select_related("plan").get(pk=account.pk)
        if account.mailboxes_available() <= 0:
            raise LimitReached(
                f"Your {account.plan.name} plan includes {account.plan.max_mailboxes} mailbox{pluralize(account.plan.max_mailboxes, 'es')} and {pluralize(account.plan.max_mailboxes, 'it is,they are')} all in use. "
                "Upgrade your plan or delete a mailbox.",
                limit="mailboxes",
            )
        if Mailbox.objects.filter(domain=domain, local_part=local_part).exists():
            raise Conflict(f"{address} already exists.", code="mailbox_exists")
        mailbox = Mailbox(account=account, domain=domain, local_part=local_part, display_name=display_name,
                          forwarding_addresses=forwarding, forward_keep_copy=forward_keep_copy)
        try:
            with transaction.atomic():
                mailbox.save(force_insert=True)
        except IntegrityError:
            raise Conflict(f"{address} already exists.", code="mailbox_exists")
        event_publish(account=account, mailbox=mailbox, type=EventType.MAILBOX_CREATED,
                      payload={"mailbox_id": str(mailbox.id), "address": address})
        _confirmations_request(mailbox=mailbox)
    return mailbox


def _confirmations_request(*, mailbox):
    """Ask the mailbox's outside forwarding addresses to confirm; their mails go out after commit."""
    pending = forwarding_confirmations_request(account=mailbox.account, addresses=mailbox.forwarding_addresses)
    mailbox_id = str(mailbox.pk)
    for confirmation_id in pending:
        enqueue_on_commit(forwarding_confirmation_send_task, confirmation_id, mailbox_id)


def mailbox_update(*, mailbox, display_name=None, forwarding_addresses=None, forward_keep_copy=None):
    """Change a mailbox's display name and forwarding; omitted arguments stay as they are.

    A forwarding address outside the account receives a confirmation mail, and nothing is
    forwarded to it until its owner confirms (mailboxes.outbound.confirmation).
    """
    fields = []
    if display_name is not None:
        mailbox.display_name = _clean_display_name(display_name)
        fields.append("display_name")
    if forwarding_addresses is not None:
        mailbox.forwarding_addresses = _clean_forwarding(forwarding_addresses, own_address=mailbox.address)
        fields.append("forwarding_addresses")
    if forward_keep_copy is not None:
        mailbox.forward_keep_copy = bool(forward_keep_copy)
        fields.append("forward_keep_copy")
    if fields:
        with transaction.atomic():
            mailbox.save(update_fields=fields)
            if forwarding_addresses is not None:
                _confirmations_request(mailbox=mailbox)
    return mailbox


def mailbox_set_status(*, mailbox, status):
    if status not in Mailbox.Status.values:
        raise Invalid(f"Status must be one of {', '.join(Mailbox.Status.values)}.", field="status")
    mailbox.status = status
    mailbox.save(update_fields=["status"])
    return mailbox


def _clean_group_name(name):
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise Invalid("A group needs a name of at most 80 characters.", field="name")
    return name


def mailbox_delete(*, mailbox):
    """Delete a mailbox with all its mail (rows, raw messages, attachment files, search entries)."""
    for email in mailbox.emails.only("pk").iterator():
        email_purge(email=email)
    with transaction.atomic():
        address = mailbox.address
        event_publish(account=mailbox.account, type=EventType.MAILBOX_DELETED,
                      payload={"mailbox_id": str(mailbox.id), "address": address})
        mailbox.delete()


def group_create(*, account, name, description="", members=()):
    name = _clean_group_name(name)
    with transaction.atomic():
        if Group.objects.filter(account=account, name__iexact=name).exists():
            raise Conflict(f"You already have a group called {name}.", code="group_exists")
        group = Group.objects.create(account=account, name=name, description=(description or "").strip()[:240])
        group_set_members(group=group, members=members)
    return group


def group_update(*, group, name, description="", members=()):
    """Rename a group, change its description and replace its members."""
    name = _clean_group_name(name)
    with transaction.atomic():
        if Group.objects.filter(account_id=group.account_id, name__iexact=name).exclude(pk=group.pk).exists():
            raise Conflict(f"You already have a group called {name}.", code="group_exists")
        group.name, group.description = name, (description or "").strip()[:240]
        group.save(update_fields=["name", "description"])
        group_set_members(group=group, members=members)
    return group


def group_set_members(*, group, members):
    """Replace the group's members; every member must belong to the group's account."""
    members = list(members)
    if any(m.account_id != group.account_id for m in members):
        raise NotFound("No mailbox with this id exists in your account.")
    group.members.set(members)
    return group


def group_delete(*, group):
    group.delete()
