"""The overview shows what is used of each plan limit: sends today, storage, mailboxes, custom domains."""

import re

from django.urls import reverse

from mailboxes.models import SendRecord
from tests.mailboxes.outbound_helpers import receive


def _meter(page, label):
    match = re.search(rf"<span>{label}</span><span class=\"muted\">([^<]+)</span></div>\s*<div class=\"meter[^\"]*\"[^>]*aria-valuenow=\"(\d+)\"", page)
    assert match, f"no meter for {label}"
    return match.group(1), int(match.group(2))


def test_overview_meters_show_usage_against_each_limit(client, free_account, settings):
    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]
    from domains.services import domain_add

    mailbox = free_account.mailboxes.get()
    receive(mailbox, subject="Some bytes", text="x" * 5000)
    SendRecord.objects.bulk_create([SendRecord(account=free_account, kind="send", recipient=f"r{n}@example.com")
                                    for n in range(10)])
    domain_add(account=free_account, name="meters.example")
    client.force_login(free_account.users.get())
    page = client.get(reverse("dashboard")).content.decode()
    assert _meter(page, "Sends today") == ("10 of 50", 20)
    assert _meter(page, "Mailboxes") == ("1 of 3", 33)
    assert _meter(page, "Custom domains") == ("1 of 1", 100)
    used, percent = _meter(page, "Storage")
    assert used.endswith("of 1.0\xa0GB") and percent == 0
    assert 'class="meter full"' in page  # the domain allowance is used up
    assert reverse("plan") in page
