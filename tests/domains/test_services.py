import base64

import pytest
from cryptography.hazmat.primitives import serialization

from domains.models import DnsRecord, Domain
from domains.selectors import access_domain, domain_list
from domains.services import domain_add, domain_delete, shared_domain_get
from mailboxes.services import mailbox_create
from qmailing.errors import Conflict, Invalid, LimitReached, NotFound
from webhooks.models import Event


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


def test_domain_names_are_unique_across_the_platform(owner, outsider):
    domain_add(account=owner, name="taken.example")
    with pytest.raises(Conflict) as err:
        domain_add(account=outsider, name="TAKEN.example")
    assert err.value.code == "domain_taken"
    with pytest.raises(Conflict):
        domain_add(account=owner, name="taken.example")


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
