"""The dashboard's mail pages: list, search, email, HTML body, attachments, actions, compose and reply."""

import re
from datetime import timedelta
from html import unescape

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from tests.mailboxes.counters_check import counters_exact
from mailboxes.inbound.ingest import email_ingest
from mailboxes.store.selectors import email_get
from mailboxes.views.content import attachment_download_name
from mailboxes.models import Attachment, Email, Folder
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import receive

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HOSTILE_HTML = ('<p>Hi <b>there</b></p><script>alert(1)</script><img src="https://tracker.example/p.gif">'
                '<a href="javascript:alert(2)" onclick="alert(3)">click</a><iframe src="https://evil.example"></iframe>')


def signed_in(client, account):
    client.force_login(account.users.get())
    return client


def page(response):
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_owner_sees_every_page(client, owner, mailbox):
    email = receive(mailbox, subject="Quarterly numbers", text="See attached.\n", html="<p>See <b>attached</b>.</p>",
                    attachments=[("report.txt", "text/plain", b"numbers")])
    signed_in(client, owner)
    listing = page(client.get(reverse("mailboxes:mail", args=[mailbox.id])))
    assert "Quarterly numbers" in listing and reverse("mail:detail", args=[email.id]) in listing
    assert reverse("mailboxes:mail", args=[mailbox.id]) in page(client.get(reverse("dashboard")))
    assert reverse("mailboxes:mail", args=[mailbox.id]) in page(client.get(reverse("mailboxes:detail", args=[mailbox.id])))
    for folder in ("INBOX", "STARRED", "SENT", "DRAFTS", "ARCHIVE", "SPAM", "TRASH"):
        page(client.get(reverse("mailboxes:mail", args=[mailbox.id]), {"folder": folder}))
    detail = page(client.get(reverse("mail:detail", args=[email.id])))
    assert "See attached." in detail and "report.txt" in detail
    assert reverse("mail:attachment", args=[email.id, 0]) in detail
    html_view = page(client.get(reverse("mail:detail", args=[email.id]), {"view": "html"}))
    assert f'src="{reverse("mail:html", args=[email.id])}"' in html_view
    assert re.search(r"<iframe[^>]*\bsandbox=\"[^\"]*\"", html_view) and "allow-scripts" not in html_view
    page(client.get(reverse("mail:html", args=[email.id])))
    page(client.get(reverse("mail:search")))
    page(client.get(reverse("mailboxes:compose", args=[mailbox.id]), follow=True))
    reply = page(client.get(reverse("mail:reply", args=[email.id]), follow=True))
    assert "Re: Quarterly numbers" in reply and "alice@example.com" in reply


def test_outsider_gets_404_for_every_mail_url(client, owner, outsider, mailbox):
    email = receive(mailbox, subject="Private", attachments=[("a.txt", "text/plain", b"secret")])
    signed_in(client, outsider)
    for url in (reverse("mailboxes:mail", args=[mailbox.id]), reverse("mail:detail", args=[email.id]),
                reverse("mail:html", args=[email.id]), reverse("mail:attachment", args=[email.id, 0]),
                reverse("mailboxes:compose", args=[mailbox.id]), reverse("mail:reply", args=[email.id])):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"secret" not in response.content and b"Private" not in response.content
    for action in ("read", "unread", "star", "unstar", "trash", "restore", "move"):
        assert client.post(reverse("mail:action", args=[email.id]), {"action": action, "folder": "ARCHIVE"}).status_code == 404
    # Another account's mailbox is not among the From choices: a form error, and nothing is sent.
    assert client.post(reverse("mail:compose"), {"sender": str(mailbox.id), "to": "x@example.com", "text": "hi"}).status_code == 400
    assert client.post(reverse("mail:compose"), {"reply": str(email.id), "to": "x@example.com", "text": "hi"}).status_code == 404
    email.refresh_from_db()
    assert (email.is_read, email.is_starred, email.folder) == (False, False, Folder.INBOX)
    assert not Email.objects.filter(account=outsider, folder=Folder.SENT).exists()
    assert str(email.id) not in page(client.get(reverse("mail:search"), {"q": "Private"}))


def test_hostile_subject_sender_and_text_are_escaped_everywhere(client, owner, mailbox):
    email = receive(mailbox, subject=f"Hi {XSS}", sender=f'"Eve {XSS}" <eve@example.com>', text=f"Body {XSS}\n")
    signed_in(client, owner)
    urls = [reverse("mailboxes:mail", args=[mailbox.id]), reverse("mail:detail", args=[email.id]),
            f"{reverse('mail:compose')}?reply={email.id}", f"{reverse('mail:compose')}?reply={email.id}&all=1",
            f"{reverse('mail:compose')}?forward={email.id}", f"{reverse('mail:search')}?q=Hi",
            f"{reverse('mailboxes:mail', args=[mailbox.id])}?q=Hi", reverse("mail:inbox")]
    for url in urls:
        content = page(client.get(url))
        assert "<script>alert" not in content and "<img src=x" not in content, url
        assert "&lt;script&gt;" in content, url


def test_html_endpoint_serves_sanitised_html_under_a_strict_policy(client, owner, mailbox):
    email = receive(mailbox, subject="Newsletter", html=HOSTILE_HTML)
    signed_in(client, owner)
    response = client.get(reverse("mail:html", args=[email.id]))
    body = page(response).lower()
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "style-src 'unsafe-inline'" in policy and "img-src data:" in policy
    assert "https:" not in policy and "script-src" not in policy
    assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Content-Type"].startswith("text/html")
    assert "<script" not in body and "javascript:" not in body and "onclick" not in body and "<iframe" not in body
    assert "<b>there</b>" in body

    detail = page(client.get(reverse("mail:detail", args=[email.id]), {"view": "html"}))
    assert "Show remote images" in detail
    with_images = client.get(reverse("mail:html", args=[email.id]), {"images": "1"})
    assert "img-src data: https:" in with_images["Content-Security-Policy"]
    assert "default-src 'none'" in with_images["Content-Security-Policy"]


def test_attachment_downloads_exact_bytes_as_attachment(client, owner, mailbox):
    data = bytes(range(256)) * 40
    email = receive(mailbox, attachments=[("notes.txt", "text/plain", b"first"),
                                          ("../../evil\".html", "text/html", b"<script>alert(1)</script>"),
                                          ("photo.bin", "application/octet-stream", data)])
    signed_in(client, owner)
    response = client.get(reverse("mail:attachment", args=[email.id, 2]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert response["Content-Disposition"].startswith("attachment;") and "photo.bin" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"

    html = client.get(reverse("mail:attachment", args=[email.id, 1]))
    disposition = html["Content-Disposition"]
    assert disposition.startswith("attachment;") and "/" not in disposition and ".." not in disposition
    assert html["Content-Type"] == "application/octet-stream"
    assert b"".join(html.streaming_content) == b"<script>alert(1)</script>"
    assert client.get(reverse("mail:attachment", args=[email.id, 3])).status_code == 404


def test_download_names_never_carry_paths_quotes_or_control_characters():
    def name(filename, position=0):
        return attachment_download_name(Attachment(filename=filename, position=position))

    assert name("report.pdf") == "report.pdf" and name("Über café.txt") == "Über café.txt"
    assert name("../../etc/passwd") == "passwd" and name("C:\\Users\\x\\evil.exe") == "evil.exe"
    assert name('a"b\r\nContent-Type: x;y.txt') == "a_b_Content-Type_ x_y.txt"
    assert name(".htaccess") == "htaccess" and name("", position=2) == "attachment-3" and name("...") == "attachment-1"
    long = name("x" * 400 + ".pdf")
    assert len(long) <= 150 and long.endswith(".pdf")


def test_search_finds_a_received_message_in_the_mailbox_and_across_mailboxes(client, owner, mailbox, sender):
    receive(mailbox, subject="Invoice for March", text="Total is 42 euros.\n")
    receive(sender, subject="Holiday plans", text="Beach.\n", attachments=[("map.txt", "text/plain", b"x")])
    signed_in(client, owner)
    found = page(client.get(reverse("mailboxes:mail", args=[mailbox.id]), {"q": "invoice"}))
    assert "Invoice for March" in found and "Holiday plans" not in found
    everywhere = page(client.get(reverse("mail:search"), {"q": "holiday"}))
    assert "Holiday plans" in everywhere and sender.address in everywhere and "Invoice" not in everywhere
    with_files = page(client.get(reverse("mail:search"), {"q": "", "has_attachment": "on"}))
    assert "Holiday plans" in with_files and "Invoice" not in with_files
    assert "Invoice for March" in page(client.get(reverse("mail:search"), {"q": "euros", "unread": "on"}))


def test_older_link_pages_by_cursor(client, owner, mailbox, monkeypatch):
    monkeypatch.setattr("mailboxes.views.mail.PAGE_SIZE", 2)
    start = timezone.now() - timedelta(days=1)
    for number in range(5):
        receive(mailbox, subject=f"Message number {number}", date=start + timedelta(minutes=number))
    signed_in(client, owner)
    seen, url = [], reverse("mailboxes:mail", args=[mailbox.id])
    while url:
        content = page(client.get(url))
        seen += re.findall(r"Message number (\d)", content)
        older = re.search(r'href="(\?[^"]*cursor=[^"]+)">Older<', content)
        assert "page=" not in content
        url = reverse("mailboxes:mail", args=[mailbox.id]) + unescape(older.group(1)) if older else None
    assert seen == ["4", "3", "2", "1", "0"]
    bad = client.get(reverse("mailboxes:mail", args=[mailbox.id]), {"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and "cursor is not valid" in bad.content.decode()


def test_compose_sends_to_a_local_recipient_and_lands_in_sent(client, owner, sender, recipient_mailbox):
    signed_in(client, owner)
    upload = SimpleUploadedFile("plan.txt", b"the plan", content_type="text/plain")
    response = client.post(reverse("mail:compose"), {"sender": str(sender.id), "to": recipient_mailbox.address, "cc": "", "bcc": "", "subject": "Lunch?",
                            "text": "Noon works.", "attachments": [upload]})
    copy = Email.objects.get(mailbox=sender, folder=Folder.SENT)
    assert response.status_code == 302 and response.url == reverse("mail:detail", args=[copy.id])
    assert copy.subject == "Lunch?" and copy.has_attachments
    delivered = Email.objects.get(mailbox=recipient_mailbox, subject="Lunch?")
    assert delivered.folder == Folder.INBOX and not delivered.is_read and "Noon works." in delivered.text
    sent_list = page(client.get(reverse("mailboxes:mail", args=[sender.id]), {"folder": "SENT"}))
    assert "Lunch?" in sent_list and "Delivered" in sent_list
    counters_exact(sender)
    counters_exact(recipient_mailbox)


def test_compose_errors_are_shown_under_their_fields(client, owner, sender):
    signed_in(client, owner)
    response = client.post(reverse("mail:compose"), {"sender": str(sender.id), "to": "good@example.com, not an address", "cc": "also bad", "subject": "x", "text": "y"})
    content = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'name="to".*?class="errorlist"', content, re.S) and re.search(r'name="cc".*?class="errorlist"', content, re.S)
    empty = client.post(reverse("mail:compose"), {"sender": str(sender.id), "to": "", "subject": "x", "text": "y"})
    assert empty.status_code == 400 and "at least one recipient" in empty.content.decode()
    assert not Email.objects.filter(mailbox=sender, folder=Folder.SENT).exists()


def test_reply_threads_with_the_original_and_prefills_recipient(client, owner, sender, recipient_mailbox):
    original = receive(sender, subject="Question", sender="Bob <bob@example.com>", message_id="q1@example.com",
                       to=sender.address)
    signed_in(client, owner)
    form = page(client.get(reverse("mail:reply", args=[original.id]), follow=True))
    assert 'value="bob@example.com"' in form and 'value="Re: Question"' in form and "&gt; Hi there." in form
    response = client.post(reverse("mail:compose"), {"reply": str(original.id), "to": recipient_mailbox.address, "subject": "Re: Question", "text": "Answer."})
    reply = Email.objects.get(mailbox=sender, folder=Folder.SENT)
    assert response.url == reverse("mail:detail", args=[reply.id])
    assert reply.thread_id == original.thread_id and reply.in_reply_to == "q1@example.com"
    thread = page(client.get(reverse("mail:detail", args=[original.id])))
    assert "2 messages in this conversation" in thread and reverse("mail:detail", args=[reply.id]) in thread


def test_replying_from_the_page_to_a_header_injection_subject_adds_no_bcc(client, owner, sender):
    raw = make_message(subject="x", to=sender.address, message_id="evil-1@attacker.example")
    parent = email_ingest(mailbox=sender, raw=raw.replace(b"Subject: x", b"Subject: =?UTF-8?Q?=0A?=Bcc: injected@example.com"))
    signed_in(client, owner)
    form = page(client.get(reverse("mail:reply", args=[parent.id]), follow=True))
    subject = unescape(re.search(r'name="subject" value="([^"]*)"', form).group(1))
    client.post(reverse("mail:compose"), {"reply": str(parent.id), "to": "victim@client.example", "subject": subject, "text": "ok"})
    reply = Email.objects.get(mailbox=sender, folder=Folder.SENT)
    with reply.raw.open("rb") as handle:
        head = handle.read().split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n")) and reply.bcc == []


def test_opening_marks_read_and_counters_stay_exact(client, owner, mailbox):
    first = receive(mailbox, subject="One")
    receive(mailbox, subject="Two")
    assert counters_exact(mailbox)[1] == 2
    signed_in(client, owner)
    listing = page(client.get(reverse("mailboxes:mail", args=[mailbox.id])))
    assert listing.count('<li class="unread"') == 2
    page(client.get(reverse("mail:detail", args=[first.id])))
    assert email_get(account=owner, email_id=first.id).is_read
    assert counters_exact(mailbox)[1] == 1
    page(client.get(reverse("mail:detail", args=[first.id])))
    assert counters_exact(mailbox)[1] == 1


def test_actions_flag_move_trash_and_restore(client, owner, mailbox):
    email = receive(mailbox, subject="Keep me")
    signed_in(client, owner)
    action = reverse("mail:action", args=[email.id])

    def state():
        current = email_get(account=owner, email_id=email.id)
        return current.is_read, current.is_starred, current.folder

    client.post(action, {"action": "read"})
    assert state() == (True, False, Folder.INBOX)
    response = client.post(action, {"action": "unread"})
    assert response.url.startswith(reverse("mailboxes:mail", args=[mailbox.id])) and state()[0] is False
    client.post(action, {"action": "star"})
    assert "Keep me" in page(client.get(reverse("mailboxes:mail", args=[mailbox.id]), {"folder": "STARRED"}))
    client.post(action, {"action": "unstar"})
    client.post(action, {"action": "move", "folder": "ARCHIVE"})
    assert state() == (False, False, Folder.ARCHIVE)
    counters_exact(mailbox)
    client.post(action, {"action": "trash"})
    assert state()[2] == Folder.TRASH and counters_exact(mailbox)[1] == 0
    assert "Restore" in page(client.get(reverse("mail:detail", args=[email.id])))
    client.post(action, {"action": "restore"})
    assert state() == (True, False, Folder.ARCHIVE)
    bad = client.post(action, {"action": "move", "folder": "NOWHERE"}, follow=True)
    assert "folder must be one of" in bad.content.decode() and state()[2] == Folder.ARCHIVE
    assert client.get(action).status_code == 405
    counters_exact(mailbox)
