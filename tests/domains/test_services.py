import base64

import pytest
from cryptography.hazmat.primitives import serialization

from domains.models import DnsRecord, Domain
from domains.selectors import access_domain, domain_list
from domains.services import domain_add, domain_delete, domain_verify, shared_domain_get
from mailboxes.services import mailbox_create
from core.errors import Conflict, Invalid, LimitReached, NotFound
from events.models import Event


def test_adding_a_domain_generates_its_checklist_and_keys(owner):
    domain = domain_add(account=owner, name="  My-Startup.COM. ")
    assert domain.name == "my-startup.com" and domain.status == Domain.Status.PENDING
    kinds = [r.kind for r in domain.dns_records.order_by("position")]
    assert kinds == ["ownership", "mx", "spf", "dkim", "dmarc"]
    for record in domain.dns_records.all():
        assert record.host and record.type in ("MX", "TXT") and record.expected and record.state == DnsRecord.State.UNCHECKED
    dkim = domain.dns_records.get(kind="dkim")
    assert dkim.host == "qm1._domainkey.my-startup.com"
    assert dkim.expected == f"v=DKIM1; k=rsa; p={domain.dkim_public_key}"
    private = serialization.load_pem_private_key(domain.dkim_private_key.encode(), password=None)
    assert private.key_size == 2048
    public = serialization.load_der_public_key(base64.b64decode(domain.dkim_public_key))
    assert public.public_numbers() == private.public_key().public_numbers()
    assert domain.check_slot == domain.id.int % 60
    assert Event.objects.filter(account=owner, type="domain.added").count() == 1


def test_every_domain_gets_its_own_key_and_token(owner):
    first = domain_add(account=owner, name="one.example")
    second = domain_add(account=owner, name="two.example")
    assert first.dkim_private_key != second.dkim_private_key
    assert first.ownership_token != second.ownership_token


def test_private_key_never_appears_in_the_checklist_or_events(owner):
    domain = domain_add(account=owner, name="secret.example")
    body = domain.dkim_private_key.split("-----")[2].strip().splitlines()[1]
    for record in domain.dns_records.all():
        assert body not in record.expected
    for event in Event.objects.filter(account=owner):
        assert body not in str(event.payload)


def test_a_verified_name_cannot_be_claimed_again(owner, outsider, dns_server):
    domain = domain_add(account=owner, name="taken.example")
    with pytest.raises(Conflict):
        domain_add(account=owner, name="TAKEN.example")  # twice in one account, even unverified
    dns_server.publish_checklist(domain)
    domain_verify(domain=domain)
    with pytest.raises(Conflict) as err:
        domain_add(account=outsider, name="taken.example")
    assert err.value.code == "domain_taken" and "7 days" in err.value.detail


def test_an_unverified_claim_does_not_block_the_real_owner(owner, outsider, dns_server):
    squatter = domain_add(account=outsider, name="bigcorp.example")
    real = domain_add(account=owner, name="bigcorp.example")
    dns_server.publish_checklist(real)  # only the real owner can publish records for the name
    assert domain_verify(domain=squatter).status == Domain.Status.PENDING
    assert domain_verify(domain=real).status == Domain.Status.VERIFIED
    assert not Domain.objects.filter(pk=squatter.pk).exists()  # the unused claim is dropped


def test_a_domain_whose_ownership_record_is_gone_long_enough_is_released(owner, outsider, dns_server, settings):
    settings.QMAILING_DOMAIN_RELEASE_DAYS = 0  # release on the first failed check instead of after a week
    old = domain_add(account=owner, name="moved.example")
    dns_server.publish_checklist(old)
    old = domain_verify(domain=old)
    mailbox = mailbox_create(account=owner, domain=old, local_part="info")
    dns_server.zone.clear()  # the name got a new owner who removed our records
    old = domain_verify(domain=old)
    assert old.status == Domain.Status.PENDING
    changed = Event.objects.filter(account=owner, type="domain.dns_changed").latest("cursor")
    assert {"kind": "status", "from": "verified", "to": "pending"} in changed.payload["changes"]
    new = domain_add(account=outsider, name="moved.example")
    dns_server.publish_checklist(new)
    assert domain_verify(domain=new).status == Domain.Status.VERIFIED
    from mailboxes.selectors import mailbox_by_address

    assert mailbox_by_address(address="info@moved.example") is None  # the old account's mailbox gets nothing
    assert Domain.objects.filter(pk=old.pk).exists() and mailbox.domain_id == old.pk  # kept for its owner to clean up


def test_passing_dns_trouble_does_not_unverify(owner, dns_server):
    domain = domain_add(account=owner, name="flaky.example")
    dns_server.publish_checklist(domain)
    domain_verify(domain=domain)
    dns_server.zone.clear()
    domain = domain_verify(domain=domain)
    assert domain.status == Domain.Status.VERIFIED and domain.ownership_failing_since is not None
    dns_server.publish_checklist(domain)
    assert domain_verify(domain=domain).ownership_failing_since is None


def test_the_shared_domain_and_its_subdomains_cannot_be_added(owner):
    for name in ("qmailing.localhost", "x.qmailing.localhost", "mx.qmailing.localhost"):
        with pytest.raises(Invalid) as err:
            domain_add(account=owner, name=name)
        assert err.value.code == "domain_reserved"


def test_domain_limit_of_the_plan_is_enforced(free_account):
    domain_add(account=free_account, name="first.example")
    with pytest.raises(LimitReached) as err:
        domain_add(account=free_account, name="second.example")
    assert err.value.status == 402 and err.value.extra["limit"] == "domains"
    assert "1 custom domain" in err.value.detail
    assert Domain.objects.filter(account=free_account).count() == 1


def test_bad_names_are_rejected_before_anything_is_stored(owner):
    with pytest.raises(Invalid):
        domain_add(account=owner, name="a@b")
    assert not Domain.objects.filter(account=owner).exists()


def test_outsider_gets_not_found_for_the_owners_domain(owner, outsider):
    domain = domain_add(account=owner, name="mine.example")
    with pytest.raises(NotFound):
        access_domain(account=outsider, domain_id=domain.id)
    with pytest.raises(NotFound):
        access_domain(account=owner, domain_id="not-a-uuid")
    assert list(domain_list(account=outsider)) == []
    assert access_domain(account=owner, domain_id=str(domain.id)) == domain


def test_shared_domain_is_always_verified_and_listed_for_nobody(owner):
    shared = shared_domain_get()
    assert shared.is_shared and shared.is_verified and shared.account is None
    assert shared not in domain_list(account=owner)


def test_a_domain_with_mailboxes_cannot_be_removed(owner, verified_domain):
    mailbox_create(account=owner, domain=verified_domain, local_part="sales")
    with pytest.raises(Conflict):
        domain_delete(domain=verified_domain)
    verified_domain.mailboxes.all().delete()
    domain_delete(domain=verified_domain)
    assert not Domain.objects.filter(pk=verified_domain.pk).exists()
