"""Forwarding is not an open relay: confirmation by the target, the send ledger, SRS, no spam or DMARC failures.

Attacked as the penetration test did: a new FREE account sets outside forwarding addresses, and forged
mail arrives over the real SMTP server.
"""

import re
import smtplib
from email import policy
from email.parser import BytesParser

import pytest
from django.urls import reverse

from accounts.services import account_set_plan
from mailboxes.models import Email, Folder, ForwardDelivery, ForwardingConfirmation, SendRecord
from mailboxes.outbound.forwarding import email_forward
from mailboxes.outbound.srs import srs_reverse
from mailboxes.services import mailbox_create, mailbox_update
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import confirmed_forwarding

# The SMTP thread must see the rows; forwarding runs its tasks in-process.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("eager_tasks")]

FORGED = "PayPal Security <security@paypal.com>"
OUTSIDE = [f"drop{i}@collector.example" for i in range(10)]



def _deliver(server, mailbox, *, count=1, sender=FORGED, envelope="security@paypal.com"):
    with smtplib.SMTP(server.hostname, server.port, timeout=10) as client:
        for index in range(count):
            raw = make_message(subject=f"Account locked {index}", sender=sender, to=mailbox.address)
            client.sendmail(envelope, [mailbox.address], raw.replace(b"\n", b"\r\n"))


def _forwarded(smtp_relay):
    return [m for m in smtp_relay.messages if m.mail_from != f"no-reply@{_shared()}"]


def _confirmations(smtp_relay):
    return [m for m in smtp_relay.messages if m.mail_from == f"no-reply@{_shared()}"]


def _shared():
    from django.conf import settings

    return settings.QMAILING_SHARED_DOMAIN


@pytest.fixture
def free_owner(owner):
    account_set_plan(account=owner, plan_code="FREE")
    owner.refresh_from_db()
    return owner


def test_the_open_relay_of_the_pentest_forwards_nothing(free_owner, inbound_smtp, smtp_relay):
    """Before: 10 unconfirmed outside addresses × 60 forged mails = 600 DKIM-signed copies, none counted."""
    mailbox = free_owner.mailboxes.get()
    mailbox_update(mailbox=mailbox, forwarding_addresses=OUTSIDE)
    _deliver(inbound_smtp, mailbox, count=60)
    assert Email.objects.filter(mailbox=mailbox, folder=Folder.INBOX).count() == 60
    assert _forwarded(smtp_relay) == []
    assert sorted(m.rcpt_tos[0] for m in _confirmations(smtp_relay)) == sorted(OUTSIDE)  # one each, nothing else
    assert SendRecord.objects.filter(account=free_owner, kind="system").count() == 10
    assert not ForwardDelivery.objects.exists()


def test_an_address_receives_copies_only_after_confirming_with_the_button(client, owner, verified_domain,
                                                                          inbound_smtp, smtp_relay):
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="hello")
    client.force_login(owner.users.get())
    response = client.post(reverse("mailboxes:detail", args=[mailbox.id]),
                           {"display_name": "", "forwarding_addresses": "me@personal.example", "forward_keep_copy": "on"})
    assert response.status_code == 302
    [mail] = _confirmations(smtp_relay)
    assert mail.rcpt_tos == ["me@personal.example"]
    body = BytesParser(policy=policy.default).parsebytes(mail.original_content).get_body().get_content()
    link = re.search(r"https?://\S+/forwarding/confirm/(\S+)/", body)
    page = client.get(reverse("mailboxes:detail", args=[mailbox.id])).content.decode()
    assert "waiting for confirmation" in page
    _deliver(inbound_smtp, mailbox)
    assert _forwarded(smtp_relay) == []  # not yet confirmed

    anonymous = client.__class__()
    path = reverse("mailboxes:forwarding-confirm", args=[link.group(1)])
    assert "Yes, forward mail" in anonymous.get(path).content.decode()
    assert not ForwardingConfirmation.objects.get(address="me@personal.example").is_confirmed  # GET confirms nothing
    assert anonymous.post(path).status_code == 200
    assert ForwardingConfirmation.objects.get(address="me@personal.example").is_confirmed
    assert anonymous.post(reverse("mailboxes:forwarding-confirm", args=["forged-token"])).status_code == 404

    _deliver(inbound_smtp, mailbox, sender="Carol <carol@client.example>", envelope="carol@client.example")
    [copy] = _forwarded(smtp_relay)
    assert copy.rcpt_tos == ["me@personal.example"]
    assert copy.mail_from.startswith("SRS0=") and copy.mail_from.endswith("@brand.example")
    assert srs_reverse(copy.mail_from) == "carol@client.example"
    assert SendRecord.objects.filter(account=owner, kind="forward", recipient="me@personal.example").count() == 1


def test_forwarded_copies_count_against_the_sends_per_day_per_recipient(owner, verified_domain, inbound_smtp,
                                                                       smtp_relay):
    plan = owner.plan
    before, plan.sends_per_day = plan.sends_per_day, 5
    plan.save()
    try:
        mailbox = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="fan",
                                                      forwarding_addresses=["a@personal.example", "b@personal.example"]))
        assert SendRecord.objects.filter(account=owner).count() == 2  # the two confirmation mails
        _deliver(inbound_smtp, mailbox, count=3, sender="Carol <carol@client.example>", envelope="carol@client.example")
        assert len(_forwarded(smtp_relay)) == 3  # 5 a day: 2 confirmations + 3 copies, then refused
        assert SendRecord.objects.filter(account=owner).count() == 5
        refused = ForwardDelivery.objects.filter(status="failed")
        assert refused.count() == 3 and all("sent emails per day" in r.error for r in refused)
        assert Email.objects.filter(mailbox=mailbox, folder=Folder.INBOX).count() == 3  # the copies are kept
    finally:
        plan.sends_per_day = before
        plan.save()


def test_spam_and_dmarc_failures_are_never_forwarded(owner, verified_domain, smtp_relay, eager_tasks):
    from mailboxes.inbound.ingest import email_ingest

    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="keep")
    spam = email_ingest(mailbox=mailbox, raw=make_message(to=mailbox.address), folder=Folder.SPAM)
    forged = email_ingest(mailbox=mailbox, raw=make_message(to=mailbox.address))
    Email.objects.filter(pk=forged.pk).update(authentication={"verdict": "fail", "dmarc": {"result": "fail"}})
    confirmed_forwarding(mailbox_update(mailbox=mailbox, forwarding_addresses=["me@personal.example"],
                                        forward_keep_copy=False))
    for email in (spam, forged):
        email_forward(email_id=email.id)
    assert _forwarded(smtp_relay) == []
    assert Email.objects.filter(pk__in=[spam.pk, forged.pk]).count() == 2  # kept, though keep-copy is off


def test_a_mailbox_whose_domain_was_lost_forwards_nothing(owner, outsider, dns_server, settings, smtp_relay,
                                                           eager_tasks):
    from domains.services import domain_add, domain_verify
    from mailboxes.inbound.ingest import email_ingest

    settings.QMAILING_DOMAIN_RELEASE_DAYS = 0
    old = domain_add(account=owner, name="alice-brand.test")
    dns_server.publish_checklist(old)
    old = domain_verify(domain=old)
    mailbox = confirmed_forwarding(mailbox_create(account=owner, domain=old, local_part="sales",
                                                  forwarding_addresses=["me@personal.example"]))
    dns_server.zone.clear()
    domain_verify(domain=old)
    email = email_ingest(mailbox=mailbox, raw=make_message(to=mailbox.address))
    email_forward(email_id=email.id)
    assert _forwarded(smtp_relay) == []


def test_forged_mail_that_fails_dmarc_over_smtp_is_kept_and_not_forwarded(owner, verified_domain, dns_server,
                                                                           inbound_smtp, smtp_relay):
    """The whole path: our DMARC check on arrival decides, not anything the sender wrote."""
    dns_server.add("bank.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    dns_server.add("_dmarc.bank.example", "TXT", "v=DMARC1; p=reject")
    mailbox = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="ops",
                                                  forwarding_addresses=["me@personal.example"],
                                                  forward_keep_copy=False))
    forged = make_message(subject="Verify your account", sender="Bank <security@bank.example>", to=mailbox.address)
    forged = b"Authentication-Results: mx.qmailing.localhost; dmarc=pass header.from=bank.example\n" + forged
    with smtplib.SMTP(inbound_smtp.hostname, inbound_smtp.port, timeout=10) as client:
        client.sendmail("security@bank.example", [mailbox.address], forged.replace(b"\n", b"\r\n"))
    email = Email.objects.get(mailbox=mailbox)
    assert email.authentication["verdict"] == "fail"
    assert _forwarded(smtp_relay) == [] and not ForwardDelivery.objects.exists()
