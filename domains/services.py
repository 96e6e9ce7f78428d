import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.template.defaultfilters import pluralize

from accounts.models import Account
from domains import dns
from domains.keys import dkim_keypair, ownership_token
from domains.models import DnsRecord, Domain, slot_for
from domains.names import normalize_domain
from core.errors import Conflict, Invalid, LimitReached
from events.models import EventType
from events.services import event_publish

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
        if Domain.objects.filter(name=ascii_name, account=account).exists():
            raise Conflict(f"{ascii_name} is already in your account.", code="domain_taken")
        # Unverified claims by others do not block: whoever proves ownership in DNS gets the name.
        if Domain.objects.filter(name=ascii_name, status=Domain.Status.VERIFIED).exists():
            raise Conflict(f"{ascii_name} is already verified by another QMailing account. If you own it now, "
                           "publish our records anyway: the other account loses it once its ownership record has "
                           f"been gone for {settings.QMAILING_DOMAIN_RELEASE_DAYS} days.", code="domain_taken")
        if account.domains_available() <= 0:
            raise LimitReached(
                f"Your {account.plan.name} plan includes {account.plan.max_domains} custom domain{pluralize(account.plan.max_domains)} and {pluralize(account.plan.max_domains, 'it is,they are')} all in use. "
                "Upgrade your plan or remove a domain.",
                limit="domains",
            )
        domain = _new_domain(account=account, name=ascii_name)
        try:
            with transaction.atomic():
                domain.save(force_insert=True)
        except IntegrityError:
            raise Conflict(f"{ascii_name} is already in your account.", code="domain_taken")
        DnsRecord.objects.bulk_create(
            DnsRecord(domain=domain, kind=e.kind, host=e.host, type=e.type, expected=e.expected, required=e.required, position=e.position)
            for e in dns.expected_records(domain)
        )
        event_publish(account=account, type=EventType.DOMAIN_ADDED, payload={"domain_id": str(domain.id), "name": domain.name})
    return domain


def domain_verify(*, domain):
    """Look every checklist record up now and store what was found.

    A pending domain becomes verified when ownership, MX and DKIM are ok and no other account holds
    the name; the other accounts' unused claims on it are then dropped. A verified domain stays
    verified through passing DNS trouble, but goes back to pending once its ownership record has
    failed for QMAILING_DOMAIN_RELEASE_DAYS, so a new owner of the name can take it. DNS failures
    become record states; this never raises for them.
    """
    if domain.is_shared:
        return domain
    resolver = dns.build_resolver()
    now = timezone.now()
    outcomes = {}
    for exp in dns.expected_records(domain):
        outcomes[exp.kind] = (exp, dns.check(exp, domain, resolver))

    with transaction.atomic():
        domain = Domain.objects.select_for_update().get(pk=domain.pk)
        changes = _store_outcomes(domain=domain, outcomes=outcomes, now=now)
        ownership_ok = outcomes[DnsRecord.Kind.OWNERSHIP][1].state == DnsRecord.State.OK
        domain.ownership_failing_since = None if ownership_ok else (domain.ownership_failing_since or now)
        domain.last_checked_at = now
        required_ok = all(outcome.state == DnsRecord.State.OK for exp, outcome in outcomes.values() if exp.required)
        payload = {"domain_id": str(domain.id), "name": domain.name}
        if domain.status == Domain.Status.PENDING and required_ok and _take_name(domain=domain, now=now):
            event_publish(account=domain.account, type=EventType.DOMAIN_VERIFIED, payload=payload)
        elif domain.status == Domain.Status.VERIFIED and _ownership_lost(domain=domain, now=now):
            domain.status = Domain.Status.PENDING
            changes.append({"kind": "status", "from": Domain.Status.VERIFIED, "to": Domain.Status.PENDING})
        domain.save(update_fields=["last_checked_at", "status", "verified_at", "ownership_failing_since"])
        if changes:
            event_publish(account=domain.account, type=EventType.DOMAIN_DNS_CHANGED, payload={**payload, "changes": changes})
    return domain


def _store_outcomes(*, domain, outcomes, now):
    """Save each record's new state; return the state changes of records checked before."""
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
    return changes


def _take_name(*, domain, now):
    """Make this claim the verified holder of its name, unless another account holds it."""
    holder = Domain.objects.select_for_update().filter(name=domain.name, status=Domain.Status.VERIFIED).exclude(pk=domain.pk)
    if holder.exists():
        record = domain.dns_records.get(kind=DnsRecord.Kind.OWNERSHIP)
        record.fix = ("Another QMailing account still holds this domain. It is released to you once that "
                      f"account's ownership record has been gone for {settings.QMAILING_DOMAIN_RELEASE_DAYS} days.")
        record.save(update_fields=["fix"])
        return False
    domain.status, domain.verified_at = Domain.Status.VERIFIED, now
    # Claims that never proved ownership and hold no mailboxes have nothing left to wait for.
    Domain.objects.filter(name=domain.name, status=Domain.Status.PENDING, mailboxes__isnull=True).exclude(pk=domain.pk).delete()
    return True


def _ownership_lost(*, domain, now):
    since = domain.ownership_failing_since
    return since is not None and now - since >= timedelta(days=settings.QMAILING_DOMAIN_RELEASE_DAYS)


def domain_delete(*, domain):
    """Remove a custom domain that no longer has mailboxes."""
    if domain.is_shared:
        raise Invalid("The shared domain cannot be removed.", code="domain_reserved")
    if domain.mailboxes.exists():
        raise Conflict(f"{domain.name} still has mailboxes. Delete or move them first.", code="domain_in_use")
    domain.delete()
