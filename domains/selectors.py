from django.core.exceptions import ValidationError

from domains.models import Domain
from core.errors import NotFound


def domain_list(*, account):
    """The account's custom domains (the shared domain is not theirs to list)."""
    return Domain.objects.filter(account=account).prefetch_related("dns_records").order_by("name")


def access_domain(*, account, domain_id):
    """The account's domain with this id, or NotFound — the same answer for missing and foreign."""
    try:
        return Domain.objects.get(pk=domain_id, account=account)
    except (Domain.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No domain with this id exists in your account.")


def domains_for_mailboxes(*, account):
    """Domains this account may create mailboxes on: its verified domains and the shared domain."""
    from django.db.models import Q

    return Domain.objects.filter(Q(account=account, status=Domain.Status.VERIFIED) | Q(is_shared=True)).order_by("is_shared", "name")


def domain_records(*, domain):
    return list(domain.dns_records.order_by("position"))


def domains_in_slot(*, slot):
    return Domain.objects.filter(check_slot=slot, is_shared=False).values_list("id", flat=True)


def domain_page(*, account, cursor=None, limit=50):
    """One keyset page of the account's custom domains, newest first (the API's list)."""
    from core.pagination import keyset_page

    return keyset_page(Domain.objects.filter(account=account), cursor=cursor, limit=limit, time_field="created_at")


def access_mailbox_domain(*, account, domain_id=None):
    """The domain a new mailbox of this account goes on: one of its own domains (by id) or, without an id,
    the shared domain. NotFound for a foreign or missing id; whether it is verified is mailbox_create's call."""
    if domain_id is None:
        from domains.services import shared_domain_get

        return shared_domain_get()
    return access_domain(account=account, domain_id=domain_id)


ZONE_TTL = 3600
TXT_CHUNK = 255  # one DNS character-string holds at most 255 bytes; longer TXT values are split (RFC 1035 §3.3)


def _absolute(host):
    return host if host.endswith(".") else f"{host}."


def _txt_strings(value):
    escaped = [value[i:i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in escaped)


def dns_record_zone_line(*, record):
    """One checklist record as a BIND zone-file line (absolute names, long TXT values split into 255-byte strings)."""
    if record.type == "MX":
        preference, _, target = record.expected.partition(" ")
        data = f"{preference} {_absolute(target.strip())}"
    elif record.type == "TXT":
        data = _txt_strings(record.expected)
    else:
        data = record.expected
    return f"{_absolute(record.host)}\t{ZONE_TTL}\tIN\t{record.type}\t{data}"


def domain_zone_file(*, domain, records=None):
    """The whole checklist as zone-file lines to paste at a DNS provider that accepts BIND imports."""
    records = domain_records(domain=domain) if records is None else records
    lines = [f"; QMailing records for {domain.name}", *(dns_record_zone_line(record=record) for record in records)]
    return "\n".join(lines) + "\n"
