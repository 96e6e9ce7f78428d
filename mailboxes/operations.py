"""Agent-facing mailbox operations (see agent.operations); the mail store's live beside the store."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL, TOOL_GROUP_MAILBOXES
from accounts.scopes import MAILBOX_READ, MAILBOX_WRITE
from domains.selectors import access_mailbox_domain
from mailboxes.selectors import access_mailbox, mailbox_page
from mailboxes.services import MAX_FORWARDING_ADDRESSES, mailbox_create
from agent.operations import Input, NextCursor, Output, PageInput, PageOut, operation


class MailboxOut(Output):
    id: UUID = Field(description="Use this id with the other mailbox tools.")
    address: str = Field(description="The full email address.")
    display_name: str = Field(description="The name shown in From on mail sent from this mailbox.")
    domain_id: UUID
    status: Literal["active", "suspended"] = Field(description="A suspended mailbox refuses new mail.")
    message_count: int
    unread_count: int
    storage_used_bytes: int = Field(validation_alias=AliasChoices("storage_used_bytes", "storage_used"))
    forwarding_addresses: list[str]
    forward_keep_copy: bool
    created_at: datetime


class MailboxPage(PageOut):
    items: list[MailboxOut]
    next_cursor: NextCursor


@operation("GET", "mailboxes", scope=MAILBOX_READ, plan_group=TOOL_GROUP_MAILBOXES,
           example_prompt="Which mailboxes do I have, and how many unread messages are in each?")
def list_mailboxes(*, actor, args: PageInput) -> MailboxPage:
    """List mailboxes

    Start here: the account's mailboxes, by address, with their ids, addresses and unread counts; the other
    tools take a mailbox id from this list. Pass next_cursor back as cursor for more.
    """
    return mailbox_page(account=actor.account, cursor=args.cursor, limit=args.limit, mailbox_ids=actor.mailbox_ids)


class MailboxIdInput(Input):
    mailbox_id: UUID = Field(description="The mailbox id, from qmailing_list_mailboxes.")


@operation("GET", "mailboxes/{mailbox_id}", scope=MAILBOX_READ, plan_group=TOOL_GROUP_MAILBOXES,
           example_prompt="How much storage does hello@brand.example use?")
def get_mailbox(*, actor, args: MailboxIdInput) -> MailboxOut:
    """Get a mailbox

    Use to check one mailbox (address, status, counts, storage used, forwarding) before reading or sending from
    it.
    """
    return access_mailbox(account=actor.account, mailbox_id=args.mailbox_id, mailbox_ids=actor.mailbox_ids)


class CreateMailboxInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"local_part": "ada", "display_name": "Ada Lovelace", "domain_id": None}]})

    local_part: str = Field(min_length=1, max_length=64, description="The part before @, e.g. 'ada' (role names such as support@ are reserved on the shared domain).")
    domain_id: UUID | None = Field(None, description=("One of the account's verified domains (qmailing_list_domains); "
                                                      "omit for the platform's shared domain."))
    display_name: str = Field("", max_length=120, description="The name shown in From; one line.")
    forwarding_addresses: list[str] = Field(default_factory=list, max_length=MAX_FORWARDING_ADDRESSES,
                                            description="Addresses to forward new mail to (each confirms first).")
    forward_keep_copy: bool = Field(True, description="Keep a copy here when forwarding.")


@operation("POST", "mailboxes", scope=MAILBOX_WRITE, plan_group=TOOL_GROUP_MAIL, success_status=201,
           account_wide=True, example_prompt="Create a mailbox support@brand.example with the display name Brand Support.")
def create_mailbox(*, actor, args: CreateMailboxInput) -> MailboxOut:
    """Create a mailbox

    Use only when the user asks for a new address: creates a mailbox on one of the account's verified domains
    (domain_id) or on the shared domain. It counts against the plan's mailbox limit.
    """
    domain = access_mailbox_domain(account=actor.account, domain_id=args.domain_id)
    return mailbox_create(account=actor.account, domain=domain, local_part=args.local_part,
                          display_name=args.display_name, forwarding_addresses=args.forwarding_addresses,
                          forward_keep_copy=args.forward_keep_copy)
