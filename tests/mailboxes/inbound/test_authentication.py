"""SPF, DKIM, DMARC and ARC of mail from the outside world: the real SMTP server, a real DNS server."""

import smtplib
import time
from email import message_from_bytes
from email.policy import default as default_policy

import dkim
import pytest

from domains.keys import dkim_keypair
from mailboxes.inbound.authentication import (MAX_DKIM_SIGNATURES, MAX_HEADER_FIELDS, message_authenticate,
                                              untrusted_results_renamed)
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Email
from tests.mailboxes.inbound.test_esp import SIGNING_KEY, URL, basic_auth, signed_post
from tests.mailboxes.inbound_helpers import make_message
from tests.timing import within

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread must see committed rows

SELECTOR = "s2026"
OURS = b"Authentication-Results: mx.qmailing.localhost;"


@pytest.fixture(scope="module")
def keys():
    return dkim_keypair()  # (private key PEM, public key for p=)



@pytest.fixture
def world(dns_server, keys):
    """shop.example sends from 127.0.0.1 and signs; bank.example sends from elsewhere and is forged."""
    dns_server.add("shop.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add(f"{SELECTOR}._domainkey.shop.example", "TXT", f"v=DKIM1; k=rsa; p={keys[1]}")
    dns_server.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@shop.example")
    dns_server.add("bank.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    dns_server.add("_dmarc.bank.example", "TXT", "v=DMARC1; p=reject")
    return dns_server


def wire(raw):
    return raw.replace(b"\n", b"\r\n")


def signed(raw, keys, *, domain="shop.example", selector=SELECTOR):
    signature = dkim.sign(raw, selector.encode(), domain.encode(), keys[0].encode(),
                          include_headers=[b"from", b"to", b"subject", b"date"])
    return signature + raw


def send(server, *, mail_from, to, raw):
    with smtplib.SMTP(server.hostname, server.port, timeout=30) as client:
        client.ehlo("mta.shop.example")
        return client.sendmail(mail_from, [to], raw)


def stored(mailbox):
    email = Email.objects.get(mailbox=mailbox)
    with email.raw.open("rb") as handle:
        return email.authentication, handle.read()


def header_values(raw, name):
    return [str(value) for value in message_from_bytes(raw, policy=default_policy).get_all(name, [])]


def test_a_signed_message_from_an_authorised_server_passes(inbound_smtp, world, keys, mailbox):
    raw = signed(wire(make_message(sender="Shop <news@shop.example>", to=mailbox.address, subject="Your order")), keys)
    assert send(inbound_smtp, mail_from="bounces@shop.example", to=mailbox.address, raw=raw) == {}
    authentication, copy = stored(mailbox)
    assert authentication["verdict"] == "pass"
    assert authentication["spf"]["result"] == "pass" and authentication["spf"]["domain"] == "shop.example"
    assert authentication["spf"]["client_ip"] == "127.0.0.1" and authentication["spf"]["helo"] == "mta.shop.example"
    assert [(item["result"], item["domain"], item["selector"]) for item in authentication["dkim"]] == [
        ("pass", "shop.example", SELECTOR)]
    dmarc = authentication["dmarc"]
    assert (dmarc["result"], dmarc["policy"], dmarc["from_domain"], dmarc["aligned"]) == (
        "pass", "reject", "shop.example", ["spf", "dkim"])
    assert "arc" not in authentication
    # Our header sits with our trace lines, above everything the client sent, which follows untouched.
    head, client_part = copy.split(b"\r\n" + OURS, 1)
    assert head.startswith(b"Return-Path: <bounces@shop.example>\r\nReceived: from mta.shop.example")
    assert client_part.endswith(raw)
    results = header_values(copy, "Authentication-Results")
    assert len(results) == 1
    assert "spf=pass smtp.helo=mta.shop.example smtp.mailfrom=shop.example" in results[0]
    assert f"dkim=pass header.d=shop.example header.s={SELECTOR}" in results[0]
    assert "dmarc=pass" in results[0] and "header.from=shop.example" in results[0]


@pytest.mark.parametrize("envelope, dkim_domain", [
    ("ceo@bank.example", None),  # SPF fails: bank.example does not send from here
    ("anyone@shop.example", None),  # SPF passes, but for the attacker's own domain: not aligned
    ("anyone@shop.example", "shop.example"),  # DKIM passes too, still for the wrong domain
])
def test_a_forged_from_fails(inbound_smtp, world, keys, mailbox, envelope, dkim_domain):
    raw = wire(make_message(sender="Bank CEO <ceo@bank.example>", to=mailbox.address, subject="Urgent transfer"))
    if dkim_domain:
        raw = signed(raw, keys, domain=dkim_domain)
    assert send(inbound_smtp, mail_from=envelope, to=mailbox.address, raw=raw) == {}  # recorded, not refused
    authentication, copy = stored(mailbox)
    assert authentication["verdict"] == "fail"
    dmarc = authentication["dmarc"]
    assert (dmarc["result"], dmarc["policy"], dmarc["from_domain"], dmarc["aligned"]) == (
        "fail", "reject", "bank.example", [])
    assert authentication["spf"]["result"] == ("fail" if envelope.endswith("bank.example") else "pass")
    assert [item["result"] for item in authentication["dkim"]] == (["pass"] if dkim_domain else [])
    (results,) = header_values(copy, "Authentication-Results")
    assert results.startswith("mx.qmailing.localhost;") and "dmarc=fail" in results
    assert "header.from=bank.example" in results


@pytest.mark.parametrize("trouble", ["timeouts", "servfail", "broken"])
def test_dns_trouble_is_recorded_as_temperror_and_the_message_is_still_accepted(inbound_smtp, world, keys, mailbox,
                                                                                settings, trouble):
    settings.QMAILING_DNS_TIMEOUT = 0.5
    getattr(world, trouble).update({"shop.example", f"{SELECTOR}._domainkey.shop.example", "_dmarc.shop.example"})
    raw = signed(wire(make_message(sender="news@shop.example", to=mailbox.address)), keys)
    assert send(inbound_smtp, mail_from="bounces@shop.example", to=mailbox.address, raw=raw) == {}
    authentication, copy = stored(mailbox)
    assert authentication["verdict"] == "temperror"
    assert authentication["spf"]["result"] == "temperror"
    assert [item["result"] for item in authentication["dkim"]] == ["temperror"]
    assert authentication["dmarc"]["result"] == "temperror"
    (results,) = header_values(copy, "Authentication-Results")
    assert "spf=temperror" in results and "dkim=temperror" in results and "dmarc=temperror" in results


def test_a_sender_supplied_authentication_results_claiming_our_id_is_not_trusted(inbound_smtp, world, mailbox):
    claims = (b"Authentication-Results: mx.qmailing.localhost; spf=pass smtp.mailfrom=bank.example;\r\n"
              b"\tdkim=pass header.d=bank.example; dmarc=pass header.from=bank.example\r\n"
              b"authentication-results: (trust me) MX.QMailing.Localhost.; dmarc=pass\r\n"
              b"Authentication-Results: mx.elsewhere.example; dmarc=pass\r\n")
    raw = claims + wire(make_message(sender="ceo@bank.example", to=mailbox.address))
    assert send(inbound_smtp, mail_from="ceo@bank.example", to=mailbox.address, raw=raw) == {}
    authentication, copy = stored(mailbox)
    assert authentication["verdict"] == "fail"  # our check, not their claim
    results = header_values(copy, "Authentication-Results")
    assert len(results) == 2  # ours, and the one of another server (which claims nothing in our name)
    assert results[0].startswith("mx.qmailing.localhost;") and "dmarc=fail" in results[0]
    assert results[1] == "mx.elsewhere.example; dmarc=pass"
    assert b"\r\nX-Untrusted-Authentication-Results: mx.qmailing.localhost; spf=pass" in copy
    assert b"\r\nX-Untrusted-Authentication-Results: (trust me) MX.QMailing.Localhost.; dmarc=pass" in copy


@pytest.mark.parametrize("claim", [
    b"Authentication-Results : mx.qmailing.localhost; dmarc=pass",  # obsolete space before the colon
    b"Authentication-Results: mx.qmailing.localhost\r\n\t; dmarc=pass",  # folded
    b"Authentication-Results: (a=b; c) mx.qmailing.localhost; dmarc=pass",  # comments first
    b"Authentication-Results: garbage without results",  # unreadable: cannot be told apart from ours
])
def test_every_spelling_of_a_claim_to_our_id_is_renamed(claim):
    raw = b"Subject: x\r\n" + claim + b"\r\nX-After: y\r\n\r\nAuthentication-Results: mx.qmailing.localhost; body\r\n"
    renamed = untrusted_results_renamed(raw)
    assert renamed == raw.replace(b"Subject: x\r\nAuthentication-Results", b"Subject: x\r\nX-Untrusted-Authentication-Results", 1)
    assert renamed.endswith(b"\r\n\r\nAuthentication-Results: mx.qmailing.localhost; body\r\n")  # the body is left alone


def test_a_claim_after_a_bare_carriage_return_is_renamed_too():
    raw = b"X-A: b\rAuthentication-Results: mx.qmailing.localhost; dmarc=pass\r\nARC-Authentication-Results: i=1; x\r\n\r\n"
    assert untrusted_results_renamed(raw) == raw.replace(b"\rAuth", b"\rX-Untrusted-Auth")


def test_a_from_header_that_parsers_read_differently_is_not_vouched_for(inbound_smtp, world, keys, mailbox):
    # dkimpy ends lines at LF only and sees one From (shop.example, signed and SPF-authorised); the
    # stored copy's parser also ends them at a bare CR and shows the bank's address first.
    message = wire(make_message(sender="news@shop.example", to=mailbox.address))
    raw = signed(b"X-Note: hi\rFrom: ceo@bank.example\r\n" + message, keys)
    assert send(inbound_smtp, mail_from="bounces@shop.example", to=mailbox.address, raw=raw) == {}
    authentication, _ = stored(mailbox)
    assert Email.objects.get(mailbox=mailbox).from_address == "ceo@bank.example"
    assert authentication["verdict"] == "permerror"
    assert authentication["dmarc"]["reason"] == "the From header reads differently to different mail parsers"


def test_an_arc_sealed_message_has_its_chain_recorded(inbound_smtp, world, keys, mailbox):
    world.add(f"{SELECTOR}._domainkey.lists.example", "TXT", f"v=DKIM1; k=rsa; p={keys[1]}")
    original = signed(wire(make_message(sender="news@shop.example", to=mailbox.address)), keys)
    relayed = b"Authentication-Results: lists.example; dkim=pass header.d=shop.example\r\n" + original
    seal = dkim.arc_sign(relayed, SELECTOR.encode(), b"lists.example", keys[0].encode(), b"lists.example")
    assert send(inbound_smtp, mail_from="bounces@lists.example", to=mailbox.address, raw=b"".join(seal) + relayed) == {}
    authentication, copy = stored(mailbox)
    assert authentication["arc"] == {"result": "pass", "sets": 1, "sealers": ["lists.example"], "reason": ""}
    assert authentication["verdict"] == "pass"  # through shop.example's aligned DKIM; ARC only informs
    assert authentication["spf"]["result"] == "none"
    assert "arc=pass" in header_values(copy, "Authentication-Results")[0]


def test_a_header_section_beyond_the_bounds_is_not_parsed_and_is_a_permerror(inbound_smtp, world, keys, mailbox):
    filler = b"".join(b"X-Filler-%d: x\r\n" % number for number in range(MAX_HEADER_FIELDS + 1))
    raw = filler + signed(wire(make_message(sender="news@shop.example", to=mailbox.address)), keys)
    assert send(inbound_smtp, mail_from="bounces@shop.example", to=mailbox.address, raw=raw) == {}
    authentication, copy = stored(mailbox)
    assert authentication["verdict"] == "permerror"
    assert f"more than {MAX_HEADER_FIELDS} fields" in authentication["reason"]
    assert authentication["dkim"] == [] and authentication["spf"]["result"] == "pass"
    assert copy.split(b"\r\n" + OURS, 1)[1].endswith(raw)


def test_mail_through_the_mailgun_webhook_is_checked_against_the_server_mailgun_took_it_from(client, settings, world,
                                                                                             keys, mailbox):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY, "WEBHOOK_SECRET": "mailgun:s3cret-pass"}
    message = signed(wire(make_message(sender="news@shop.example", to=mailbox.address)), keys)
    raw = (b"Received: from mta.shop.example (mta.shop.example\r\n [192.0.2.99]) by mxa.mailgun.org with ESMTP id 1;"
           b" Mon, 02 Mar 2026 10:00:00 +0000\r\n" + message)
    post = signed_post(raw=raw, recipient=mailbox.address)
    post["sender"] = "bounces@shop.example"
    assert client.post(URL, post, **basic_auth()).status_code == 200
    authentication, copy = stored(mailbox)
    spf = authentication["spf"]
    assert (spf["result"], spf["client_ip"], spf["helo"]) == ("fail", "192.0.2.99", "mta.shop.example")
    assert authentication["dmarc"]["aligned"] == ["dkim"] and authentication["verdict"] == "pass"
    assert copy.startswith(OURS) and copy.endswith(raw)


def test_local_deliveries_and_imports_are_not_checked(mailbox):
    imported = email_ingest(mailbox=mailbox, raw=make_message(sender="ceo@bank.example", subject="Imported"))
    local = deliver_hosted(raw=make_message(sender="ceo@bank.example", subject="Local"), recipients=[mailbox.address]).emails[0]
    for email in (imported, local):
        email.refresh_from_db()
        assert email.authentication == {}
        with email.raw.open("rb") as handle:
            assert b"Authentication-Results" not in handle.read()


@pytest.mark.latency
def test_all_lookups_of_a_message_share_one_time_budget(world, keys, settings):
    settings.QMAILING_DNS_TIMEOUT = 1.0
    world.timeouts.update({"slow.example", "_dmarc.slow.example"} | {f"s{n}._domainkey.slow.example" for n in range(4)})
    raw = wire(make_message(sender="news@slow.example"))
    for number in range(4):
        raw = signed(raw, keys, domain="slow.example", selector=f"s{number}")
    started = time.monotonic()
    authentication = message_authenticate(raw=raw, client_ip="127.0.0.1", helo="mta.slow.example",
                                          mail_from="news@slow.example", time_budget=1.5)
    assert time.monotonic() - started < min(within(3), 5.5)  # one timeout per lookup would take 6 s
    assert authentication["verdict"] == "temperror"
    assert {item["result"] for item in authentication["dkim"]} == {"temperror"}
    assert "ran out" in authentication["dmarc"]["reason"]


def test_the_from_domains_signature_is_verified_even_behind_many_others(inbound_smtp, world, keys, mailbox):
    world.add(f"{SELECTOR}._domainkey.relay.example", "TXT", f"v=DKIM1; k=rsa; p={keys[1]}")
    raw = signed(wire(make_message(sender="news@shop.example", to=mailbox.address)), keys)
    for _ in range(MAX_DKIM_SIGNATURES + 1):
        raw = signed(raw, keys, domain="relay.example")
    assert send(inbound_smtp, mail_from="bounces@relay.example", to=mailbox.address, raw=raw) == {}
    authentication, _ = stored(mailbox)
    results = [(item["result"], item["domain"]) for item in authentication["dkim"]]
    assert results[-1] == ("pass", "shop.example")
    assert results.count(("pass", "relay.example")) == MAX_DKIM_SIGNATURES - 1
    assert results.count(("policy", "relay.example")) == 2  # beyond the cap: listed, not checked
    assert authentication["verdict"] == "pass"


def test_dns_answers_are_cached_between_messages_and_failures_are_not(world, keys):
    """The second message from a sender asks DNS nothing (SPF, DKIM key and DMARC policy within their TTL); a
    SERVFAIL is not remembered, so the next message sees the record once DNS answers again."""
    raw = signed(wire(make_message(sender="Shop <news@shop.example>", to="someone@example.org")), keys)
    check = dict(raw=raw, client_ip="127.0.0.1", helo="mta.shop.example", mail_from="bounces@shop.example")
    assert message_authenticate(**check)["verdict"] == "pass"
    asked = list(world.queries)
    assert ("shop.example", "TXT") in asked and ("_dmarc.shop.example", "TXT") in asked
    assert message_authenticate(**check)["verdict"] == "pass"
    assert world.queries == asked

    world.servfail.add("flaky.example")
    flaky = dict(raw=wire(make_message(sender="Flaky <news@flaky.example>", to="someone@example.org")),
                 client_ip="127.0.0.1", helo="mta.flaky.example", mail_from="bounces@flaky.example")
    assert message_authenticate(**flaky)["spf"]["result"] == "temperror"
    world.servfail.discard("flaky.example")
    world.add("flaky.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    assert message_authenticate(**flaky)["spf"]["result"] == "pass"
