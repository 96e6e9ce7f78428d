"""The mail list pages both ways by keyset ("Older" / "Newer") and says where it is ("3–4 of 5")."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes.store.selectors import email_count, email_list
from core.errors import Invalid
from tests.mailboxes.outbound_helpers import receive


def _page(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content.decode()[:500]
    content = response.content.decode()
    links = {label: unescape(href) for href, label in re.findall(r'<a class="button" href="(\?[^"]*)">(Older|Newer|Newest)</a>', content)}
    count = re.search(r'<span class="muted">([\d,]+–[\d,]+ of [\d,]+\+?)</span>', content)
    return re.findall(r"Message number (\d+)", content), links, count.group(1) if count else None


@pytest.fixture
def five(client, owner, mailbox, monkeypatch):
    monkeypatch.setattr("mailboxes.views.mail.PAGE_SIZE", 2)
    start = timezone.now() - timedelta(days=1)
    for number in range(5):
        receive(mailbox, subject=f"Message number {number}", date=start + timedelta(minutes=number))
    client.force_login(owner.users.get())
    return reverse("mailboxes:mail", args=[mailbox.id])


def test_older_then_newer_walks_back_to_the_first_page(client, five):
    base = five
    pages, url = [], base
    while True:
        seen, links, count = _page(client, url)
        pages.append((seen, count, "Newer" in links))
        if "Older" not in links:
            break
        url = base + links["Older"]
    assert pages == [(["4", "3"], "1–2 of 5", False), (["2", "1"], "3–4 of 5", True), (["0"], "5–5 of 5", True)]

    back = []
    while True:
        seen, links, count = _page(client, url)
        back.append((seen, count))
        if "Newer" not in links:
            break
        url = base + links["Newer"]
    assert back == [(["0"], "5–5 of 5"), (["2", "1"], "3–4 of 5"), (["4", "3"], "1–2 of 5")]


def test_newer_after_new_mail_arrived_still_reaches_the_newest(client, five, mailbox):
    _, links, _ = _page(client, five)
    second_url = five + links["Older"]
    _, links, _ = _page(client, second_url)
    receive(mailbox, subject="Message number 9", date=timezone.now())
    seen, links, count = _page(client, five + links["Newer"])
    assert seen == ["4", "3"] and "Newer" in links  # the page just newer than the one left, as keyset paging goes
    seen, links, count = _page(client, five + links["Newer"])
    assert seen == ["9", "4"] and "Newer" not in links and count == "1–2 of 6"  # the top is always the full newest page


def test_cursor_and_before_together_are_refused(client, five):
    _, links, _ = _page(client, five)
    older = links["Older"]
    response = client.get(five + older + "&before=" + re.search(r"cursor=([^&]+)", older).group(1))
    assert response.status_code == 400


def test_selector_pages_back_and_forth(owner, mailbox):
    start = timezone.now() - timedelta(days=1)
    for number in range(7):
        receive(mailbox, subject=f"Message number {number}", date=start + timedelta(minutes=number))
    first = email_list(account=owner, mailbox=mailbox, limit=3)
    assert first.prev_cursor is None
    second = email_list(account=owner, mailbox=mailbox, cursor=first.next_cursor, limit=3)
    third = email_list(account=owner, mailbox=mailbox, cursor=second.next_cursor, limit=3)
    assert [e.subject[-1] for e in third.items] == ["0"] and third.next_cursor is None
    back_to_second = email_list(account=owner, mailbox=mailbox, before=third.prev_cursor, limit=3)
    assert [e.pk for e in back_to_second.items] == [e.pk for e in second.items]
    assert back_to_second.prev_cursor and back_to_second.next_cursor
    back_to_first = email_list(account=owner, mailbox=mailbox, before=back_to_second.prev_cursor, limit=3)
    assert [e.pk for e in back_to_first.items] == [e.pk for e in first.items] and back_to_first.prev_cursor is None
    with pytest.raises(Invalid):
        email_list(account=owner, mailbox=mailbox, cursor=first.next_cursor, before=first.next_cursor, limit=3)


def test_count_is_capped(owner, mailbox):
    for number in range(4):
        receive(mailbox, subject=f"Message number {number}")
    assert email_count(account=owner, mailbox=mailbox, folder="INBOX") == (4, False)
    assert email_count(account=owner, mailbox=mailbox, folder="INBOX", cap=3) == (3, True)
    assert email_count(account=owner, mailbox=mailbox, folder="TRASH") == (0, False)
