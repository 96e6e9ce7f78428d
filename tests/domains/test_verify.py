"""Verification against a real DNS server on loopback (tests/dnsserver.py), never a patched dnspython."""

import pytest

from domains.models import DnsRecord, Domain
from domains.services import domain_add, domain_verify
from events.models import Event

State = DnsRecord.State


def states(domain):
    return {r.kind: r.state for r in domain.dns_records.all()}


def record(domain, kind):
    return domain.dns_records.get(kind=kind)


@pytest.fixture
def domain(owner):
    return domain_add(account=owner, name="Shop.Example")


def test_fully_published_domain_verifies(domain, dns_server):
    dns_server.publish_checklist(domain)
    domain = domain_verify(domain=domain)
    assert domain.status == Domain.Status.VERIFIED and domain.verified_at and domain.last_checked_at
    assert set(states(domain).values()) == {State.OK}
    assert Event.objects.filter(account=domain.account, type="domain.verified").count() == 1


def test_nothing_published_is_missing_everywhere_and_stays_pending(domain, dns_server):
    domain = domain_verify(domain=domain)
    assert domain.status == Domain.Status.PENDING
    assert set(states(domain).values()) == {State.MISSING}
    assert domain.last_checked_at is not None
    mx = record(domain, "mx")
    assert "mx.qmailing.localhost" in mx.fix and mx.found == ""


def test_spf_and_dmarc_are_recommended_not_required(domain, dns_server):
    dns_server.publish_checklist(domain)
    dns_server.clear(f"_dmarc.{domain.name}")
    dns_server.zone[domain.name] = [r for r in dns_server.zone[domain.name] if r[0] == "MX"]  # drop SPF
    domain = domain_verify(domain=domain)
    assert domain.status == Domain.Status.VERIFIED
    assert record(domain, "spf").state == State.MISSING
    assert record(domain, "dmarc").state == State.MISSING


def test_wrong_records_are_mismatches_with_a_fix(domain, dns_server):
    dns_server.add(domain.name, "MX", (10, "mx.other-provider.example"))
    dns_server.add(domain.name, "TXT", "v=spf1 include:_spf.other.example ~all")
    dns_server.add(f"qm1._domainkey.{domain.name}", "TXT", "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiGwrongkey")
    dns_server.add(f"_dmarc.{domain.name}", "TXT", "v=DMARC1; rua=mailto:x@example.com")
    dns_server.add(f"_qmailing.{domain.name}", "TXT", "qmailing-verification=not-the-token")
    domain = domain_verify(domain=domain)
    assert domain.status == Domain.Status.PENDING
    assert set(states(domain).values()) == {State.MISMATCH}
    assert record(domain, "mx").found == "10 mx.other-provider.example"
    assert "include:spf.qmailing.localhost" in record(domain, "spf").fix
    assert "p=none" in record(domain, "dmarc").fix
    assert record(domain, "ownership").found == "qmailing-verification=not-the-token"


def test_two_spf_records_are_a_mismatch(domain, dns_server):
    dns_server.publish_checklist(domain)
    dns_server.add(domain.name, "TXT", "v=spf1 -all")
    domain = domain_verify(domain=domain)
    assert record(domain, "spf").state == State.MISMATCH
    assert "more than one" in record(domain, "spf").fix


def test_null_mx_and_extra_mx_are_mismatches(domain, dns_server):
    dns_server.add(domain.name, "MX", (0, "."))
    domain = domain_verify(domain=domain)
    assert record(domain, "mx").state == State.MISMATCH and "null MX" in record(domain, "mx").fix
    dns_server.clear(domain.name)
    dns_server.add(domain.name, "MX", (10, "mx.qmailing.localhost"))
    dns_server.add(domain.name, "MX", (20, "backup.other.example"))
    domain = domain_verify(domain=domain)
    assert record(domain, "mx").state == State.MISMATCH and "backup.other.example" in record(domain, "mx").fix


def test_dkim_split_into_several_strings_is_accepted(domain, dns_server):
    dns_server.publish_checklist(domain)
    host = f"qm1._domainkey.{domain.name}"
    value = f"v=DKIM1; k=rsa; p={domain.dkim_public_key}"
    dns_server.clear(host)
    dns_server.add(host, "TXT", [value[:100], value[100:300], value[300:]])
    domain = domain_verify(domain=domain)
    assert record(domain, "dkim").state == State.OK


def test_garbage_txt_bytes_do_not_crash(domain, dns_server):
    dns_server.add(f"_qmailing.{domain.name}", "TXT", ["\udcff\x00\x07binary"[1:] + "é", "\x00"])
    dns_server.add(f"qm1._domainkey.{domain.name}", "TXT", "p=;;;===;v=")
    dns_server.add(f"_dmarc.{domain.name}", "TXT", "v=DMARC1")
    domain = domain_verify(domain=domain)
    assert record(domain, "ownership").state == State.MISMATCH
    assert "\\x00" in record(domain, "ownership").found  # control bytes are shown escaped, never stored raw
    assert record(domain, "dkim").state == State.MISMATCH
    assert record(domain, "dmarc").state == State.MISMATCH


def test_malformed_dns_replies_are_recorded_not_raised(domain, dns_server):
    dns_server.broken.add(f"_qmailing.{domain.name}")
    dns_server.servfail.add(domain.name)
    domain = domain_verify(domain=domain)
    assert record(domain, "ownership").state in (State.ERROR,)
    assert record(domain, "mx").state == State.ERROR
    assert "could not check" in record(domain, "mx").fix


def test_timeouts_are_recorded_as_lookup_failures(domain, dns_server, settings):
    settings.QMAILING_DNS_TIMEOUT = 0.3
    dns_server.timeouts.add(domain.name)
    domain = domain_verify(domain=domain)
    assert record(domain, "mx").state == State.ERROR
    assert "timed out" in record(domain, "mx").fix


def test_unreachable_resolver_is_recorded_for_every_record(domain, settings):
    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]  # discard port: nothing answers
    settings.QMAILING_DNS_TIMEOUT = 0.3
    domain = domain_verify(domain=domain)
    assert set(states(domain).values()) == {State.ERROR}
    assert domain.status == Domain.Status.PENDING


def test_state_changes_after_verification_publish_dns_changed(domain, dns_server):
    dns_server.publish_checklist(domain)
    domain = domain_verify(domain=domain)
    dns_server.clear(domain.name)  # MX and SPF disappear
    domain = domain_verify(domain=domain)
    event = Event.objects.filter(account=domain.account, type="domain.dns_changed").get()
    assert {c["kind"] for c in event.payload["changes"]} == {"mx", "spf"}
    assert domain.status == Domain.Status.VERIFIED  # verification is not revoked by a transient change
    domain_verify(domain=domain)
    assert Event.objects.filter(type="domain.dns_changed").count() == 1  # unchanged states publish nothing


def test_unicode_domain_is_checked_under_its_ascii_name(owner, dns_server):
    domain = domain_add(account=owner, name="bücher.example")
    assert domain.name == "xn--bcher-kva.example" and domain.unicode_name == "bücher.example"
    dns_server.publish_checklist(domain)
    assert domain_verify(domain=domain).status == Domain.Status.VERIFIED
