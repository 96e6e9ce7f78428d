"""Sends per day are a ledger per recipient that survives mailbox deletion; a lost domain sends nothing.

Attacked over HTTP through the dashboard's compose and delete pages, as a user would.
"""

import pytest
from django.urls import reverse

from accounts.services import account_set_plan
from domains.models import Domain
from domains.services import domain_add, domain_verify
from mailboxes.models import Email, Folder, SendRecord
from mailboxes.outbound.send import email_send
from mailboxes.services import mailbox_create
from core.errors import Forbidden, LimitReached


@pytest.fixture
def two_sends_a_day(owner):
    account_set_plan(account=owner, plan_code="FREE")
    owner.refresh_from_db()
    plan = owner.plan
    before, plan.sends_per_day = plan.sends_per_day, 2
    plan.save()
    yield owner
    plan.sends_per_day = before
    plan.save()


def _signed_in(client, account):
    client.force_login(account.users.get())
    return client


def _compose(client, mailbox, to):
    return client.post(reverse("mail:compose"), {"sender": str(mailbox.id), "to": to, "subject": "Hi", "text": "Hello."})


def test_deleting_the_mailbox_that_sent_gives_no_sends_back(client, two_sends_a_day, verified_domain):
    owner = two_sends_a_day
    _signed_in(client, owner)
    first = mailbox_create(account=owner, domain=verified_domain, local_part="first")
    assert _compose(client, first, "a@client.example").status_code == 302
    assert _compose(client, first, "b@client.example").status_code == 302
    response = client.post(reverse("mailboxes:delete", args=[first.id]))
    assert response.status_code == 302 and not Email.objects.filter(account=owner, folder=Folder.SENT).exists()
    second = mailbox_create(account=owner, domain=verified_domain, local_part="second")
    refused = _compose(client, second, "c@client.example")
    assert refused.status_code == 400 and "2 sent emails per day" in refused.content.decode()
    assert not Email.objects.filter(mailbox=second, folder=Folder.SENT).exists()
    assert SendRecord.objects.filter(account=owner).count() == 2


def test_each_recipient_counts_and_a_send_over_the_allowance_takes_none(client, two_sends_a_day, verified_domain):
    owner = two_sends_a_day
    sender = mailbox_create(account=owner, domain=verified_domain, local_part="alice")
    _signed_in(client, owner)
    refused = _compose(client, sender, "a@client.example, b@client.example, c@client.example")
    assert refused.status_code == 400 and "this needs 3 more" in refused.content.decode()
    assert SendRecord.objects.filter(account=owner).count() == 0
    assert _compose(client, sender, "a@client.example, b@client.example").status_code == 302
    assert list(SendRecord.objects.filter(account=owner).values_list("kind", flat=True)) == ["send", "send"]
    with pytest.raises(LimitReached):
        email_send(account=owner, mailbox=sender, to=["d@client.example"], text="x")


def test_the_ledger_keeps_the_email_it_was_for(owner, sender):
    copy = email_send(account=owner, mailbox=sender, to=["a@client.example"], cc=["b@client.example"], text="x")
    assert set(SendRecord.objects.filter(account=owner).values_list("recipient", "email_id")) == {
        ("a@client.example", copy.pk), ("b@client.example", copy.pk)}


def test_an_account_that_lost_its_domain_cannot_send_as_it(client, owner, outsider, dns_server, settings):
    settings.QMAILING_DOMAIN_RELEASE_DAYS = 0  # release on the first failed check instead of after a week
    old = domain_add(account=owner, name="alice-brand.test")
    dns_server.publish_checklist(old)
    old = domain_verify(domain=old)
    sales = mailbox_create(account=owner, domain=old, local_part="sales")
    _signed_in(client, owner)
    assert _compose(client, sales, "someone@client.example").status_code == 302
    dns_server.zone.clear()  # the name changed hands
    assert domain_verify(domain=old).status == Domain.Status.PENDING
    new = domain_add(account=outsider, name="alice-brand.test")
    dns_server.publish_checklist(new)
    assert domain_verify(domain=new).status == Domain.Status.VERIFIED
    refused = _compose(client, sales, "someone@client.example")
    assert refused.status_code == 400 and "not verified for your account" in refused.content.decode()
    assert Email.objects.filter(mailbox=sales, folder=Folder.SENT).count() == 1
    with pytest.raises(Forbidden) as error:
        email_send(account=owner, mailbox=sales, to=["x@client.example"], text="x")
    assert error.value.code == "domain_not_verified"
