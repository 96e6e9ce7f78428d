"""The inbox pages: the sidebar and unified views, unread counts, bulk actions, delete forever and empty trash,
the conversation view, compose with a From chooser, reply-all, forward with attachments, drafts that save and
resume, the search filters, and the live-update websocket."""

import asyncio
import json
import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Draft, Email, Folder
from mailboxes.services import mailbox_create
from mailboxes.store.services import email_update
from qmailing.templatetags.when import ago_text, mail_date_text
from tests.api_helpers import waiting
from tests.mailboxes.counters_check import counters_exact
from tests.mailboxes.outbound_helpers import receive
from tests.timing import wait_until_async


def signed_in(client, account):
    client.force_login(account.users.get())
    return client


def ok(response):
    assert response.status_code == 200, (response.status_code, response.content.decode()[:800])
    return response.content.decode()


@pytest.fixture
def second(owner, verified_domain):
    return mailbox_create(account=owner, domain=verified_domain, local_part="sales")


def test_unified_inbox_lists_every_mailbox_and_the_sidebar_counts_unread(client, owner, outsider, second):
    first = owner.mailboxes.exclude(pk=second.pk).get()
    receive(first, subject="To the first")
    receive(second, subject="To sales")
    read = receive(second, subject="Already read")
    starred = receive(second, subject="Starred one")
    receive(outsider.mailboxes.get(), subject="Not yours")
    email_update(email=read, is_read=True)
    email_update(email=starred, is_starred=True)
    signed_in(client, owner)
    content = ok(client.get(reverse("mail:inbox")))
    for subject in ("To the first", "To sales", "Already read"):
        assert subject in content
    assert "Not yours" not in content
    assert first.address in content and second.address in content  # rows tagged with their mailbox
    sidebar = content.split('id="sidebar"', 1)[1].split("</nav>", 1)[0]
    assert re.search(r"All inboxes</span><span class=\"count\">3<", sidebar)
    assert re.search(r"Inbox</span><span class=\"count\"[^>]*>3<", sidebar)
    assert re.search(r"Starred</span><span class=\"count\"[^>]*>1<", sidebar)
    one = ok(client.get(reverse("mailboxes:mail", args=[second.id])))
    assert "To sales" in one and "To the first" not in one
    assert re.search(r"Inbox</span><span class=\"count\"[^>]*>2<", one.split('id="sidebar"', 1)[1])
    starred_view = ok(client.get(reverse("mail:inbox"), {"folder": "STARRED"}))
    assert "Starred one" in starred_view and "To sales" not in starred_view
    # A folder that does not exist falls back to the inbox, never an error page.
    assert "To sales" in ok(client.get(reverse("mail:inbox"), {"folder": "NOPE"}))


def test_bulk_actions_change_only_the_selected_emails_of_this_account(client, owner, outsider, mailbox):
    emails = [receive(mailbox, subject=f"Bulk {n}") for n in range(4)]
    foreign = receive(outsider.mailboxes.get(), subject="Foreign")
    signed_in(client, owner)
    back = reverse("mail:inbox")
    ids = [str(emails[0].id), str(emails[1].id), str(foreign.id), "not-a-uuid"]
    response = client.post(reverse("mail:bulk"), {"ids": ids, "action": "star", "next": back})
    assert response.status_code == 302 and response.url == back
    assert [Email.objects.get(pk=e.pk).is_starred for e in emails] == [True, True, False, False]
    foreign.refresh_from_db()
    assert not foreign.is_starred
    client.post(reverse("mail:bulk"), {"ids": [str(emails[0].id), str(emails[1].id)], "action": "read"})
    client.post(reverse("mail:bulk"), {"ids": [str(emails[2].id)], "action": "archive"})
    client.post(reverse("mail:bulk"), {"ids": [str(emails[3].id)], "action": "move", "folder": "SPAM"})
    states = [(e.is_read, e.folder) for e in Email.objects.filter(pk__in=[e.pk for e in emails]).order_by("subject")]
    assert states == [(True, "INBOX"), (True, "INBOX"), (False, "ARCHIVE"), (False, "SPAM")]
    trash = client.post(reverse("mail:bulk"), {"ids": [str(e.id) for e in emails[:2]], "action": "trash"}, follow=True)
    assert "Moved 2 emails to Trash." in trash.content.decode()
    assert Email.objects.filter(pk__in=[emails[0].pk, emails[1].pk], folder=Folder.TRASH).count() == 2
    client.post(reverse("mail:bulk"), {"ids": [str(emails[0].id)], "action": "restore"})
    assert Email.objects.get(pk=emails[0].pk).folder == Folder.INBOX
    # Nothing ticked, or an unknown action: a message, nothing changes.
    assert "Select one or more emails" in client.post(reverse("mail:bulk"), {"action": "read"}, follow=True).content.decode()
    assert "Choose what to do" in client.post(reverse("mail:bulk"), {"ids": [str(emails[0].id)], "action": "explode"}, follow=True).content.decode()
    # An off-site "next" is never followed.
    assert client.post(reverse("mail:bulk"), {"ids": [str(emails[0].id)], "action": "read", "next": "https://evil.example/"}).url == back
    counters_exact(mailbox)


def test_delete_forever_only_from_trash_and_empty_trash(client, owner, outsider, mailbox, django_capture_on_commit_callbacks):
    keep = receive(mailbox, subject="Keep me", attachments=[("a.txt", "text/plain", b"x")])
    gone = receive(mailbox, subject="Delete me", attachments=[("b.txt", "text/plain", b"y")])
    foreign = receive(outsider.mailboxes.get(), subject="Foreign trash")
    from mailboxes.store.services import email_trash
    email_trash(email=foreign)
    signed_in(client, owner)
    refused = client.post(reverse("mail:bulk"), {"ids": [str(keep.id)], "action": "delete"}, follow=True)
    assert "could not be changed" in refused.content.decode() and Email.objects.filter(pk=keep.pk).exists()
    client.post(reverse("mail:bulk"), {"ids": [str(gone.id)], "action": "trash"})
    raw_name = Email.objects.get(pk=gone.pk).raw.name
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mail:action", args=[gone.id]), {"action": "delete"}, follow=True)
    assert "Deleted for good." in response.content.decode()
    assert not Email.objects.filter(pk=gone.pk).exists()
    from django.core.files.storage import default_storage
    assert not default_storage.exists(raw_name)
    client.post(reverse("mail:bulk"), {"ids": [str(keep.id)], "action": "trash"})
    trash_page = ok(client.get(reverse("mailboxes:mail", args=[mailbox.id]), {"folder": "TRASH"}))
    assert "Empty trash" in trash_page and "Delete forever" in trash_page
    emptied = client.post(reverse("mail:empty-trash"), {"mailbox": str(mailbox.id)}, follow=True)
    assert "1 email deleted for good" in emptied.content.decode()
    assert not Email.objects.filter(mailbox=mailbox).exists()
    assert Email.objects.filter(pk=foreign.pk).exists()  # another account's trash is untouched
    assert client.post(reverse("mail:empty-trash"), {"mailbox": str(outsider.mailboxes.get().id)}).status_code == 404
    assert "already empty" in client.post(reverse("mail:empty-trash"), follow=True).content.decode()
    counters_exact(mailbox)


def test_conversation_view_shows_html_by_default_with_a_text_toggle(client, owner, mailbox):
    first = receive(mailbox, subject="Plans", message_id="p1@example.com", text="First text.\n",
                    html='<p>First <b>html</b></p><img src="https://tracker.example/p.gif">')
    second = receive(mailbox, subject="Re: Plans", message_id="p2@example.com", in_reply_to="p1@example.com",
                     references=["p1@example.com"], text="Second only text.\n")
    assert first.thread_id == second.thread_id
    signed_in(client, owner)
    content = ok(client.get(reverse("mail:detail", args=[first.id])))
    assert "2 messages in this conversation" in content
    assert f'src="{reverse("mail:html", args=[first.id])}"' in content  # HTML by default, in the sandboxed frame
    assert "allow-scripts" not in content and "allow-same-origin" not in content
    assert "Remote images are blocked" in content and "Second only text." in content
    text = ok(client.get(reverse("mail:detail", args=[first.id]), {"view": "text"}))
    assert "First text." in text and f'src="{reverse("mail:html", args=[first.id])}"' not in text
    images = ok(client.get(reverse("mail:detail", args=[first.id]), {"images": "1"}))
    assert f'src="{reverse("mail:html", args=[first.id])}?images=1"' in images
    for shortcut in ('data-shortcut="r"', 'data-shortcut="a"', 'data-shortcut="f"', 'data-shortcut="e"', 'data-shortcut="#"'):
        assert shortcut in content
    assert 'id="shortcuts"' in content


def test_compose_from_any_active_mailbox_and_refuses_a_foreign_one(client, owner, outsider, second, recipient_mailbox):
    signed_in(client, owner)
    form = ok(client.get(reverse("mail:compose")))
    assert second.address in form and outsider.mailboxes.get().address not in form
    response = client.post(reverse("mail:compose"), {"sender": str(second.id), "to": recipient_mailbox.address,
                                                     "subject": "From sales", "text": "Hello from sales."})
    assert response.status_code == 302
    assert Email.objects.get(mailbox=second, folder=Folder.SENT).subject == "From sales"
    foreign = client.post(reverse("mail:compose"), {"sender": str(recipient_mailbox.id), "to": "x@example.com", "text": "hi"})
    assert foreign.status_code == 400 and "Select a valid choice" in foreign.content.decode()
    assert 'value="x@example.com"' in foreign.content.decode()  # input kept


def test_reply_all_addresses_everyone_but_the_mailbox_itself(client, owner, sender):
    parent = receive(sender, subject="Team", sender="Bob <bob@example.com>", to=f"{sender.address}, carol@example.com",
                     message_id="team@example.com")
    Email.objects.filter(pk=parent.pk).update(cc=[{"name": "", "address": "dave@example.com"},
                                                  {"name": "", "address": sender.address}])
    signed_in(client, owner)
    content = ok(client.get(reverse("mail:compose"), {"reply": str(parent.id), "all": "1"}))
    assert 'name="to" value="bob@example.com"' in content.replace("\n", " ") or re.search(r'name="to"[^>]*value="bob@example.com"', content)
    cc = re.search(r'name="cc"[^>]*value="([^"]*)"', content).group(1)
    assert cc == "carol@example.com, dave@example.com"
    assert "Reply to all on" in content


def test_forward_sends_the_attachments_in_the_same_conversation(client, owner, sender, recipient_mailbox):
    original = receive(sender, subject="Invoice", message_id="inv@example.com", text="See the invoice.\n",
                       attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4 fake")])
    signed_in(client, owner)
    form = ok(client.get(reverse("mail:compose"), {"forward": str(original.id)}))
    assert "invoice.pdf" in form and "Forward" in form and 'name="subject"' not in form
    response = client.post(reverse("mail:compose"), {"forward": str(original.id), "sender": str(sender.id),
                                                     "to": recipient_mailbox.address, "text": "FYI, see below."})
    assert response.status_code == 302, response.content.decode()[:500]
    copy = Email.objects.get(mailbox=sender, folder=Folder.SENT)
    assert copy.subject == "Fwd: Invoice" and copy.thread_id == original.thread_id and copy.has_attachments
    assert "FYI, see below." in copy.text and "See the invoice." in copy.text
    delivered = Email.objects.get(mailbox=recipient_mailbox)
    assert [a.filename for a in delivered.attachments.all()] == ["invoice.pdf"]
    assert "cannot be kept as a draft" in client.post(
        reverse("mail:compose"), {"forward": str(original.id), "sender": str(sender.id), "to": "x@example.com",
                                  "action": "save"}).content.decode()


def test_drafts_autosave_resume_and_send_with_their_files(client, owner, sender, recipient_mailbox):
    parent = receive(sender, subject="Question", sender="Bob <bob@example.com>", message_id="q@example.com")
    signed_in(client, owner)
    # The page's script saves as you type: JSON back, no files.
    saved = client.post(reverse("mail:compose"), {"reply": str(parent.id), "to": "bob@example.com", "subject": "Re: Question",
                                                  "text": "Half an answer"}, HTTP_X_AUTOSAVE="1")
    assert saved.status_code == 200 and saved["Content-Type"] == "application/json"
    draft_id = saved.json()["draft"]
    draft = Draft.objects.get(pk=draft_id)
    assert draft.text == "Half an answer" and draft.reply_to_email_id == parent.id and draft.created_via == "Dashboard"
    again = client.post(reverse("mail:compose"), {"draft": draft_id, "to": "bob@example.com", "subject": "Re: Question",
                                                  "text": "A fuller answer"}, HTTP_X_AUTOSAVE="1")
    assert again.json()["draft"] == draft_id and Draft.objects.count() == 1
    bad = client.post(reverse("mail:compose"), {"draft": draft_id, "to": "not an address", "text": "x"}, HTTP_X_AUTOSAVE="1")
    assert bad.status_code == 400 and "error" in bad.json()
    # "Save draft" keeps an uploaded file; the drafts page lists it; resuming shows it ticked.
    upload = SimpleUploadedFile("notes.txt", b"my notes", content_type="text/plain")
    response = client.post(reverse("mail:compose"), {"draft": draft_id, "to": recipient_mailbox.address,
                                                     "subject": "Re: Question", "text": "The answer.",
                                                     "action": "save", "attachments": [upload]})
    assert response.status_code == 302 and response.url.endswith(f"?draft={draft_id}")
    listing = ok(client.get(reverse("mail:drafts")))
    assert "Re: Question" in listing and reverse("mail:compose") + f"?draft={draft_id}" in listing
    resumed = ok(client.get(reverse("mail:compose"), {"draft": draft_id}))
    assert "The answer." in resumed and 'name="keep" value="0" checked' in resumed and "notes.txt" in resumed
    sent = client.post(reverse("mail:compose"), {"draft": draft_id, "to": recipient_mailbox.address, "subject": "Re: Question",
                                                 "text": "The answer.", "keep": ["0"], "action": "send"})
    assert sent.status_code == 302
    copy = Email.objects.get(mailbox=sender, folder=Folder.SENT)
    assert copy.thread_id == parent.thread_id and copy.in_reply_to == "q@example.com"
    assert [a.filename for a in copy.attachments.all()] == ["notes.txt"]
    assert not Draft.objects.filter(pk=draft_id).exists()


def test_drafts_of_another_account_are_404(client, owner, outsider):
    from mailboxes.store.drafts import draft_create

    draft = draft_create(account=outsider, mailbox=outsider.mailboxes.get(), subject="Secret plan")
    signed_in(client, owner)
    assert client.get(reverse("mail:compose"), {"draft": str(draft.id)}).status_code == 404
    assert client.post(reverse("mail:draft-delete", args=[draft.id])).status_code == 404
    assert "Secret plan" not in ok(client.get(reverse("mail:drafts")))
    assert Draft.objects.filter(pk=draft.pk).exists()


def test_search_page_uses_the_selector_filters(client, owner, mailbox):
    receive(mailbox, subject="Contract from Bob", sender="Bob <bob@example.com>")
    receive(mailbox, subject="Contract from Carol", sender="Carol <carol@example.com>")
    signed_in(client, owner)
    content = ok(client.get(reverse("mail:search"), {"q": "contract", "from_": "bob"}))
    assert "Contract from Bob" in content and "Contract from Carol" not in content
    old = ok(client.get(reverse("mail:search"), {"q": "contract", "date_to": "2001-01-01"}))
    assert "Contract from" not in old and "No mail matches" in old
    bad = client.get(reverse("mail:search"), {"q": "contract", "date_from": "yesterday"})
    assert bad.status_code == 400 and "Enter a valid date" in bad.content.decode()


def test_relative_dates():
    now = timezone.now().replace(hour=15, minute=0)
    assert mail_date_text(now - timedelta(minutes=5), now=now) == timezone.localtime(now - timedelta(minutes=5)).strftime("%H:%M")
    assert mail_date_text(now - timedelta(days=1), now=now) == "Yesterday"
    assert mail_date_text(now - timedelta(days=400), now=now).endswith(str((now - timedelta(days=400)).year))
    assert ago_text(now - timedelta(seconds=10), now=now) == "just now"
    assert ago_text(now - timedelta(hours=3, minutes=5), now=now) == "3 hours ago"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the plans rows survive the flush
def test_the_live_socket_says_when_mail_arrives_and_refuses_strangers(owner, mailbox):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from importlib import import_module

    from qmailing.asgi import application

    user = owner.users.get()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY], store[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    origin = [(b"origin", b"http://localhost")]

    async def scenario():
        anonymous = WebsocketCommunicator(application, "/ws/mail/", headers=origin)
        connected, _ = await anonymous.connect()
        assert connected
        closed = await anonymous.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4401}

        live = WebsocketCommunicator(application, "/ws/mail/",
                                     headers=origin + [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={store.session_key}".encode())])
        connected, _ = await live.connect()
        assert connected
        await wait_until_async(lambda: waiting(owner), 10, "the socket following the log")  # its cursor is read
        await database_sync_to_async(receive)(mailbox, subject="Live one")
        message = json.loads(await live.receive_from(timeout=10))
        assert message["type"] == "mail" and message["events"][0] == {"type": "email.received", "mailbox_id": str(mailbox.id)}
        assert "Live one" not in json.dumps(message)  # the socket says that, never what
        # A password change ends the socket at its next wake-up (its session was made with the old one).
        await database_sync_to_async(lambda: (user.set_password("a brand new password 7"), user.save()))()
        await database_sync_to_async(receive)(mailbox, subject="After sign-out")
        output = await live.receive_output(timeout=10)
        assert output == {"type": "websocket.close", "code": 4401}
        await live.wait()

    asyncio.run(scenario())


def test_a_large_trash_is_emptied_in_the_background(client, owner, mailbox, monkeypatch, eager_tasks):
    from mailboxes.store.services import email_trash

    monkeypatch.setattr("mailboxes.store.services.EMPTY_NOW", 2)
    for n in range(5):
        email_trash(email=receive(mailbox, subject=f"Old {n}"))
    kept = receive(mailbox, subject="Not in trash")
    signed_in(client, owner)
    response = client.post(reverse("mail:empty-trash"), follow=True)
    assert "2 emails deleted for good; the other 3 go in the background" in response.content.decode()
    # The worker (run in-process here) purged the rest: everything that was in Trash is gone, nothing else.
    assert list(Email.objects.filter(mailbox=mailbox)) == [kept]
    counters_exact(mailbox)


def test_a_long_conversation_shows_its_newest_messages_and_previews_of_their_text(client, owner, mailbox):
    first = receive(mailbox, subject="Flood", message_id="f0@example.com", text="Start " + "a" * 25_000 + " END-OF-FIRST\n")
    start = timezone.now() - timedelta(hours=1)
    last = None
    for n in range(1, 30):
        last = receive(mailbox, subject="Re: Flood", message_id=f"f{n}@example.com", in_reply_to="f0@example.com",
                       references=["f0@example.com"], text=f"Reply number {n}\n", date=start + timedelta(minutes=n))
    assert last.thread_id == first.thread_id
    signed_in(client, owner)
    newest = ok(client.get(reverse("mail:detail", args=[last.id])))
    assert "30 messages in this conversation; the 5 oldest are not shown here" in newest
    assert newest.count('class="message"') == 25 and "Reply number 29" in newest and "Reply number 4\n" not in newest
    # The focused message is always there, whole; the others' text is cut to a preview.
    oldest = ok(client.get(reverse("mail:detail", args=[first.id])))
    assert "END-OF-FIRST" in oldest and oldest.count('class="message"') == 25
    Email.objects.filter(pk=first.pk).update(received_at=timezone.now())  # now among the newest, not focused
    preview = ok(client.get(reverse("mail:detail", args=[last.id])))
    assert "Start aaaa" in preview and "END-OF-FIRST" not in preview and "This is the start of the message." in preview


def test_an_international_address_is_shown_as_people_write_it(owner, settings):
    from domains.services import domain_add
    from mailboxes.models import Mailbox

    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]
    domain = domain_add(account=owner, name="bücher.example")
    mailbox = Mailbox(account=owner, domain=domain, local_part="info")
    assert mailbox.address == "info@xn--bcher-kva.example" and mailbox.display_address == "info@bücher.example"
