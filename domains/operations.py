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

    List the custom domains bound to the user's account with their verification status, newest first, one
    page at a time. Use it to find a domain id for qmailing_get_dns_records or for creating a mailbox (the
    shared domain is not listed; it is always available).
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

    Get the DNS checklist of one of the account's domains: for each record (ownership TXT, MX, SPF, DKIM,
    DMARC) the host, type and value to publish, what the last check found, its state and how to fix it.
    Use it to help the user publish records or find why a domain is not verified. It does not run a new
    check.
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

    Add a custom domain the user owns to the account, pending until its DNS records are published and
    verified. Only when the user asked: it counts against the plan's domain limit. Then show the records
    from qmailing_get_dns_records and, once published, call qmailing_verify_domain. Fails with
    domain_taken, domain_reserved or plan_limit_reached, each saying what to do.
    """
    return domain_add(account=actor.account, name=args.name)


# Checking again with the same DNS gives the same answer, which the POST alone would not say.
@operation("POST", "domains/{domain_id}/verify", scope=DOMAIN_WRITE, plan_group=TOOL_GROUP_MAIL,
           account_wide=True, open_world=True, idempotent=True,
           example_prompt="I've added the DNS records for shop.example; check them now.")
def verify_domain(*, actor, args: DomainIdInput) -> DnsChecklistOut:
    """Verify a domain

    Look up the domain's DNS records now (ownership TXT, MX, SPF, DKIM, DMARC), store what was found and
    verify the domain when the required ones are right. Use it after the user published the records;
    returns the checklist with each record's state and fix. DNS can take minutes to propagate, so a record
    still missing may just need time.
    """
    domain_verify(domain=access_domain(account=actor.account, domain_id=args.domain_id))
    return get_dns_records(actor=actor, args=args)  # the checklist as just stored
