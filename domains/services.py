import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from domains import dns
from domains.keys import dkim_keypair, ownership_token
from domains.models import DnsRecord, Domain, slot_for
from domains.names import normalize_domain
from qmailing.errors import Conflict, Invalid, LimitReached
from webhooks.models import EventType
from webhooks.services import event_publish

logger = logging.getLogger(__name__)


def _new_domain(**fields):
    private_pem, public_b64 = dkim_keypair()
    domain = Domain(
        dkim_private_key=private_pem,
        dkim_public_key=public_b64,
        ownership_token=ownership_token(),
        dkim_selector=settings.QMAILING_DKIM_SELECTOR,
        **fields,
    )
    domain.check_slot = slot_for(domain.id)
    return domain


def shared_domain_get():
    """The platform's shared domain (QMAILING_SHARED_DOMAIN), created on first use; always verified."""
    name = normalize_domain(settings.QMAILING_SHARED_DOMAIN, field="QMAILING_SHARED_DOMAIN")
    domain = Domain.objects.filter(name=name).first()
    if domain is not None:
        return domain
    try:
        with transaction.atomic():
            domain = _new_domain(name=name, is_shared=True, status=Domain.Status.VERIFIED, verified_at=timezone.now())
            domain.save()
            return domain
    except IntegrityError:
        return Domain.objects.get(name=name)


def _is_platform_name(name):
    shared = settings.QMAILING_SHARED_DOMAIN.lower()
    platform = {shared, settings.QMAILING_MX_HOST.lower()}
    return name in platform or name.endswith("." + shared)


def domain_add(*, account, name):
    """Bind a custom domain to the account and generate its DNS checklist (keys, token, records)."""
    ascii_name = normalize_domain(name)
    if _is_platform_name(ascii_name):
        raise Invalid(f"{ascii_name} belongs to QMailing itself; add a domain you own.", field="name", code="domain_reserved")
    with transaction.atomic():
        account = Account.objects.select_for_update().select_related("plan").get(pk=account.pk)
        if Domain.objects.filter(name=ascii_name).exists():
            raise Conflict(f"{ascii_name} is already in use on QMailing. If it is yours, remove it from the other account first.", code="domain_taken")
        if account.domains_available() <= 0:
            raise LimitReached(
                f"Your {account.plan.name} plan includes {account.plan.max_domains} custom domain(s) and they are all in use. "
                "Upgrade your plan or remove a domain.",
                limit="domains",
            )
        domain = _new_domain(account=account, name=ascii_name)
        try:
            with transaction.atomic():
                domain.save(force_insert=True)
        except IntegrityError:
            raise Conflict(f"{ascii_name} is already in use on QMailing.", code="domain_taken")
        DnsRecord.objects.bulk_create(
            DnsRecord(domain=domain, kind=e.kind, host=e.host, type=e.type, expected=e.expected, required=e.required, position=e.position)
            for e in dns.expected_records(domain)
        )
        event_publish(account=account, type=EventType.DOMAIN_ADDED, payload={"domain_id": str(domain.id), "name": domain.name})
    return domain


def domain_verify(*, domain):
    """Look every checklist record up now, store what was found, and flip the domain to verified when
    MX, ownership and DKIM are all ok. DNS failures become record states; this never raises for them."""
    if domain.is_shared:
        return domain
    resolver = dns.build_resolver()
    now = timezone.now()
    outcomes = {}
    for exp in dns.expected_records(domain):
        outcomes[exp.kind] = (exp, dns.check(exp, domain, resolver))

    with transaction.atomic():
        domain = Domain.objects.select_for_update().get(pk=domain.pk)
        records = {r.kind: r for r in domain.dns_records.all()}
        changes = []
        for kind, (exp, outcome) in outcomes.items():
            record = records.get(kind) or DnsRecord(domain=domain, kind=kind)
            previous = record.state
            record.host, record.type, record.expected = exp.host, exp.type, exp.expected
            record.required, record.position = exp.required, exp.position
            record.state, record.found, record.fix, record.checked_at = outcome.state, outcome.found, outcome.fix, now
            record.save()
            if previous != outcome.state and previous != DnsRecord.State.UNCHECKED:
                changes.append({"kind": kind, "from": previous, "to": outcome.state})
        domain.last_checked_at = now
        required_ok = all(outcome.state == DnsRecord.State.OK for exp, outcome in outcomes.values() if exp.required)
        became_verified = required_ok and domain.status != Domain.Status.VERIFIED
        if became_verified:
            domain.status = Domain.Status.VERIFIED
            domain.verified_at = now
        domain.save(update_fields=["last_checked_at", "status", "verified_at"])
        payload = {"domain_id": str(domain.id), "name": domain.name}
        if became_verified:
            event_publish(account=domain.account, type=EventType.DOMAIN_VERIFIED, payload=payload)
        if changes:
            event_publish(account=domain.account, type=EventType.DOMAIN_DNS_CHANGED, payload={**payload, "changes": changes})
    return domain


def domain_delete(*, domain):
    """Remove a custom domain that no longer has mailboxes."""
    if domain.is_shared:
        raise Invalid("The shared domain cannot be removed.", code="domain_reserved")
    if domain.mailboxes.exists():
        raise Conflict(f"{domain.name} still has mailboxes. Delete or move them first.", code="domain_in_use")
    domain.delete()
