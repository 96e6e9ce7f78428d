"""Agent-facing domain operations (see agent.operations)."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import DOMAIN_READ, DOMAIN_WRITE
from domains.selectors import access_domain, domain_page, domain_records
from domains.services import domain_add, domain_verify
from agent.operations import Input, NextCursor, Output, PageInput, PageOut, With, operation


class DomainOut(Output):
    id: UUID = Field(description="Use this id with qmailing_get_dns_records and qmailing_create_mailbox.")
    name: str = Field(description="The domain name (IDNA ASCII form).")
    status: Literal["pending", "verified"] = Field(description="Mailboxes can be created only on a verified domain.")
    verified_at: datetime | None
    last_checked_at: datetime | None
    created_at: datetime


class DomainPage(PageOut):
    items: list[DomainOut]
    next_cursor: NextCursor


@operation("GET", "domains", scope=DOMAIN_READ, plan_group=TOOL_GROUP_MAIL,
           account_wide=True, example_prompt="Which of my domains are verified?")
def list_domains(*, actor, args: PageInput) -> DomainPage:
    """List domains

    Use to find the account's custom domains and whether each is verified, e.g. for a domain_id when creating a
    mailbox (the shared domain is always available and not listed).
    """
    return domain_page(account=actor.account, cursor=args.cursor, limit=args.limit)


class DnsRecordOut(Output):
    kind: Literal["mx", "spf", "dkim", "dmarc", "ownership"]
    host: str = Field(description="Where to publish the record.")
    type: str = Field(description="DNS record type: MX, TXT, …")
    value: str = Field(validation_alias=AliasChoices("value", "expected"), description="The value to publish.")
    found: str = Field(description="What the last check found in DNS.")
    state: Literal["unchecked", "ok", "missing", "mismatch", "error"]
    fix: str = Field(description="What to do when the state is not ok.")
    required: bool = Field(description="Needed for the domain to count as verified (SPF and DMARC are recommended).")
    checked_at: datetime | None


class DnsChecklistOut(Output):
    domain_id: UUID = Field(validation_alias=AliasChoices("domain_id", "id"))
    domain: str = Field(validation_alias=AliasChoices("domain", "name"))
    status: Literal["pending", "verified"]
    last_checked_at: datetime | None
    records: list[DnsRecordOut] = Field(description="The checklist: ownership, MX, SPF, DKIM, DMARC.")


class DomainIdInput(Input):
    domain_id: UUID = Field(description="The domain id, from qmailing_list_domains.")


@operation("GET", "domains/{domain_id}/dns-records", scope=DOMAIN_READ, plan_group=TOOL_GROUP_MAIL,
           account_wide=True, example_prompt="Which DNS records do I still need to add for brand.example?")
def get_dns_records(*, actor, args: DomainIdInput) -> DnsChecklistOut:
    """Get a domain's DNS records

    Use to help the user publish a domain's DNS records or find why it is not verified: each record's host,
    type, value, last state and fix. It does not check DNS again.
    """
    domain = access_domain(account=actor.account, domain_id=args.domain_id)
    return With(domain, records=domain_records(domain=domain))


# --- adding and verifying domains --------------------------------------------------------------------------


class AddDomainInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "agent-brand.example"}]})

    name: str = Field(min_length=1, max_length=253, description="The domain to add, e.g. 'example.com' (one the user owns).")


@operation("POST", "domains", scope=DOMAIN_WRITE, plan_group=TOOL_GROUP_MAIL, success_status=201,
           account_wide=True, example_prompt="Add my new domain shop.example to QMailing.")
def add_domain(*, actor, args: AddDomainInput) -> DomainOut:
    """Add a domain

    Use only when the user asks to add a domain they own: it starts pending and counts against the plan's domain
    limit. Then show qmailing_get_dns_records and, once published, call qmailing_verify_domain.
    """
    return domain_add(account=actor.account, name=args.name)


# Checking again with the same DNS gives the same answer, which the POST alone would not say.
@operation("POST", "domains/{domain_id}/verify", scope=DOMAIN_WRITE, plan_group=TOOL_GROUP_MAIL,
           account_wide=True, open_world=True, idempotent=True,
           example_prompt="I've added the DNS records for shop.example; check them now.")
def verify_domain(*, actor, args: DomainIdInput) -> DnsChecklistOut:
    """Verify a domain

    Use after the user published the DNS records: checks DNS now, verifies the domain when the required records
    are right and returns the checklist. DNS can take minutes to propagate.
    """
    domain_verify(domain=access_domain(account=actor.account, domain_id=args.domain_id))
    return get_dns_records(actor=actor, args=args)  # the checklist as just stored
