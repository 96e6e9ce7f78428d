"""Agent-facing domain operations (see qmailing.operations)."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import DOMAIN_READ
from domains.selectors import access_domain, domain_page, domain_records
from qmailing.operations import READ_ONLY, Input, Operation, PageInput, register


class DomainOut(BaseModel):
    id: UUID = Field(description="Use this id with qmailing_get_dns_records and qmailing_create_mailbox.")
    name: str = Field(description="The domain name (IDNA ASCII form).")
    status: Literal["pending", "verified"] = Field(description="Mailboxes can be created only on a verified domain.")
    verified_at: datetime | None
    last_checked_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, domain):
        return cls(id=domain.id, name=domain.name, status=domain.status, verified_at=domain.verified_at,
                   last_checked_at=domain.last_checked_at, created_at=domain.created_at)


class DomainPage(BaseModel):
    items: list[DomainOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


def _list_domains(*, actor, args):
    page = domain_page(account=actor.account, cursor=args.cursor, limit=args.limit)
    return DomainPage(items=[DomainOut.of(d) for d in page.items], next_cursor=page.next_cursor)


register(Operation(
    name="qmailing_list_domains",
    title="List domains",
    description=("List the custom domains bound to the user's account with their verification status, newest "
                 "first, one page at a time. Use it to find a domain id for qmailing_get_dns_records or for "
                 "creating a mailbox (the shared domain is not listed; it is always available)."),
    input=PageInput, output=DomainPage, scope=DOMAIN_READ, plan_group=TOOL_GROUP_MAIL, annotations=READ_ONLY,
    method="GET", path="domains", handler=_list_domains,
))


class DnsRecordOut(BaseModel):
    kind: Literal["mx", "spf", "dkim", "dmarc", "ownership"]
    host: str = Field(description="Where to publish the record.")
    type: str = Field(description="DNS record type: MX, TXT, …")
    value: str = Field(description="The value to publish.")
    found: str = Field(description="What the last check found in DNS.")
    state: Literal["unchecked", "ok", "missing", "mismatch", "error"]
    fix: str = Field(description="What to do when the state is not ok.")
    required: bool = Field(description="Needed for the domain to count as verified (SPF and DMARC are recommended).")
    checked_at: datetime | None


class DnsChecklistOut(BaseModel):
    domain_id: UUID
    domain: str
    status: Literal["pending", "verified"]
    last_checked_at: datetime | None
    records: list[DnsRecordOut] = Field(description="The checklist: ownership, MX, SPF, DKIM, DMARC.")


class DomainIdInput(Input):
    domain_id: UUID = Field(description="The domain id, from qmailing_list_domains.")


def _get_dns_records(*, actor, args):
    domain = access_domain(account=actor.account, domain_id=args.domain_id)
    records = [DnsRecordOut(kind=r.kind, host=r.host, type=r.type, value=r.expected, found=r.found, state=r.state,
                            fix=r.fix, required=r.required, checked_at=r.checked_at) for r in domain_records(domain=domain)]
    return DnsChecklistOut(domain_id=domain.id, domain=domain.name, status=domain.status,
                           last_checked_at=domain.last_checked_at, records=records)


register(Operation(
    name="qmailing_get_dns_records",
    title="Get a domain's DNS records",
    description=("Get the DNS checklist of one of the account's domains: for each record (ownership TXT, MX, "
                 "SPF, DKIM, DMARC) the host, type and value to publish, what the last check found, its "
                 "state and how to fix it. Use it to help the user publish records or find why a domain is "
                 "not verified. It does not run a new check."),
    input=DomainIdInput, output=DnsChecklistOut, scope=DOMAIN_READ, plan_group=TOOL_GROUP_MAIL, annotations=READ_ONLY,
    method="GET", path="domains/{domain_id}/dns-records", handler=_get_dns_records,
))
