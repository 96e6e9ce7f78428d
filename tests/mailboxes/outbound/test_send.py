from email import message_from_bytes, policy

import pytest

from accounts.services import account_set_plan
from tests.mailboxes.counters_check import counters_exact
from mailboxes.outbound.delivery import email_set_delivery, on_tracking
from mailboxes.models import Email, Folder, Mailbox
from mailboxes.outbound.send import email_send
from mailboxes.services import mailbox_set_status
from core.errors import Forbidden, Invalid, LimitReached, NotFound, TooLarge
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import dkim_valid, receive
from events.models import Event


def _raw(email):
    with email.raw.open("rb") as handle:
        return handle.read()


def _headers(raw):
    return message_from_bytes(raw, policy=policy.default)


def test_sent_copy_is_dkim_signed_and_verifies_against_published_key(owner, sender, dns_server, settings, tmp_path,
                                                                     eager_tasks, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")
    with django_capture_on_commit_callbacks(execute=True):
        copy = email_send(account=owner, mailbox=sender, to=["Bob <bob@elsewhere.example>"], subject="Quote 42",
                          text="Here is the quote.", html="<p>Here is the <b>quote</b>.</p>",
                          attachments=[("quote.txt", "text/plain", b"total: 42 EUR")])
    raw = _raw(copy)
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim_valid(raw, dns_server)
    signature = _headers(raw)["DKIM-Signature"]
    assert "d=brand.example" in signature and f"s={sender.domain.dkim_selector}" in signature
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in signature.split("h=")[1].split(";")[0].lower()
    copy.refresh_from_db()
    assert (copy.folder, copy.direction, copy.is_read) == (Folder.SENT, "outbound", True)
    assert copy.message_id.endswith("@brand.example")
    assert copy.delivery_status == Email.Delivery.SENT
    assert copy.has_attachments and copy.attachments.get().filename == "quote.txt"
    assert Event.objects.filter(account=owner, type="email.sent").count() == 1
    assert (tmp_path / "outbox").exists() and any((tmp_path / "outbox").iterdir())
    counters_exact(sender)


def test_bcc_never_appears_in_the_message_but_is_kept_on_the_sent_copy(owner, sender, dns_server, smtp_relay,
                                                                         eager_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        copy = email_send(account=owner, mailbox=sender, to=["to@elsewhere.example"], bcc=["secret@elsewhere.example"],
                          subject="Hi", text="x")
    [envelope] = smtp_relay.messages
    assert sorted(envelope.rcpt_tos) == ["secret@elsewhere.example", "to@elsewhere.example"]
    assert b"secret@" not in envelope.original_content and b"\nBcc" not in envelope.original_content
    assert b"secret@" not in _raw(copy)
    copy.refresh_from_db()
    assert copy.bcc == [{"address": "secret@elsewhere.example", "name": ""}]


def test_external_relay_gets_signed_bytes_with_reply_threading(owner, sender, dns_server, smtp_relay, eager_tasks,
                                                               django_capture_on_commit_callbacks):
    parent = receive(sender, subject="Project kickoff", sender="Carol <carol@client.example>",
                     message_id="root-1@client.example", references=["earlier-0@client.example"],
                     in_reply_to="earlier-0@client.example", to="alice@brand.example")
    with django_capture_on_commit_callbacks(execute=True):
        reply = email_send(account=owner, mailbox=sender, to=["carol@client.example"], text="Sounds good.",
                           reply_to_email_id=parent.id)
    [envelope] = smtp_relay.messages
    relayed = envelope.original_content
    assert envelope.mail_from == "alice@brand.example" and envelope.rcpt_tos == ["carol@client.example"]
    assert dkim_valid(relayed, dns_server)
    headers = _headers(relayed)
    assert headers["In-Reply-To"] == "<root-1@client.example>"
    assert headers["References"] == "<earlier-0@client.example> <root-1@client.example>"
    assert headers["Subject"] == "Re: Project kickoff"
    reply.refresh_from_db()
    assert reply.thread_id == parent.thread_id and reply.delivery_status == "sent"


def test_reply_subject_is_not_doubled(owner, sender):
    parent = receive(sender, subject="RE: Invoice", message_id="inv-1@client.example", to="alice@brand.example")
    reply = email_send(account=owner, mailbox=sender, to=["x@client.example"], text=".", reply_to_email_id=parent.id)
    assert reply.subject == "RE: Invoice"


def test_header_injection_in_replied_subject_never_creates_a_bcc_line(owner, sender, dns_server):
    """CVE-2024-6923: a decoded newline in an inbound subject must not start a header in our reply."""
    raw = make_message(subject="x", to="alice@brand.example", message_id="evil-1@attacker.example")
    raw = raw.replace(b"Subject: x", b"Subject: =?UTF-8?Q?=0A?=Bcc: injected@example.com")
    from mailboxes.inbound.ingest import email_ingest

    parent = email_ingest(mailbox=sender, raw=raw)
    reply = email_send(account=owner, mailbox=sender, to=["victim@client.example"], text="ok",
                       reply_to_email_id=parent.id)
    sent = _raw(reply)
    head = sent.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))
    headers = _headers(sent)
    assert headers["Bcc"] is None
    assert "\n" not in headers["Subject"] and headers["Subject"].startswith("Re:")
    assert reply.bcc == []
    assert dkim_valid(sent, dns_server)


def test_hostile_message_id_is_not_copied_into_in_reply_to(owner, sender):
    raw = make_message(subject="x", to="alice@brand.example")
    raw = b"Message-ID: <a@b>\r\n\tBcc: x@evil.example\r\n" + raw.replace(b"Message-ID", b"X-Old")
    from mailboxes.inbound.ingest import email_ingest

    parent = email_ingest(mailbox=sender, raw=raw)
    reply = email_send(account=owner, mailbox=sender, to=["v@client.example"], text="ok", reply_to_email_id=parent.id)
    head = _raw(reply).split(b"\r\n\r\n", 1)[0]
    assert b"evil.example" not in head


def test_local_delivery_between_two_hosted_mailboxes_and_reply_keeps_the_thread(owner, outsider, sender,
                                                                               recipient_mailbox, dns_server):
    first = email_send(account=owner, mailbox=sender, to=[recipient_mailbox.address], subject="Lunch?", text="Noon?")
    assert first.delivery_status == Email.Delivery.DELIVERED
    [received] = Email.objects.filter(mailbox=recipient_mailbox)
    assert (received.folder, received.direction, received.subject) == (Folder.INBOX, "inbound", "Lunch?")
    assert received.message_id == first.message_id
    assert dkim_valid(_raw(received), dns_server)

    answer = email_send(account=outsider, mailbox=recipient_mailbox, to=[sender.address], text="Yes.",
                        reply_to_email_id=received.id)
    assert answer.thread_id == received.thread_id
    back = Email.objects.get(mailbox=sender, folder=Folder.INBOX)
    assert back.thread_id == first.thread_id and back.subject == "Re: Lunch?"
    assert back.in_reply_to == first.message_id
    assert {e.type for e in Event.objects.filter(account=owner)} >= {"email.sent", "email.delivered", "email.received"}
    counters_exact(sender, recipient_mailbox)


def test_send_from_foreign_mailbox_is_not_found(outsider, sender):
    with pytest.raises(NotFound):
        email_send(account=outsider, mailbox=sender, to=["a@b.example"], text="x")


def test_suspended_mailbox_cannot_send(owner, sender):
    mailbox_set_status(mailbox=sender, status="suspended")
    with pytest.raises(Forbidden):
        email_send(account=owner, mailbox=sender, to=["a@b.example"], text="x")


def test_recipient_validation_names_each_bad_field(owner, sender):
    with pytest.raises(Invalid) as err:
        email_send(account=owner, mailbox=sender, to=["not an address"], cc=["ok@x.example"], bcc=["x@y\r\nBcc: z@z.example"])
    assert set(err.value.errors) == {"to", "bcc"}
    with pytest.raises(Invalid) as err:
        email_send(account=owner, mailbox=sender, to=[], text="x")
    assert "at least one recipient" in err.value.detail
    with pytest.raises(Invalid) as err:
        email_send(account=owner, mailbox=sender, to=[f"u{i}@x.example" for i in range(51)], text="x")
    assert "50" in err.value.detail


def test_attachment_total_is_capped(owner, sender, settings):
    settings.QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES = 1000
    with pytest.raises(TooLarge):
        email_send(account=owner, mailbox=sender, to=["a@b.example"], attachments=[("a.bin", "application/x", b"x" * 1001)])


def test_reply_to_an_email_of_another_mailbox_is_not_found(owner, outsider, sender, recipient_mailbox):
    foreign = receive(recipient_mailbox, subject="private")
    with pytest.raises(NotFound):
        email_send(account=owner, mailbox=sender, to=["a@b.example"], reply_to_email_id=foreign.id)


def test_sends_per_day_limit_is_a_clear_limit_reached(owner, sender):
    account_set_plan(account=owner, plan_code="FREE")
    owner.refresh_from_db()
    limit = owner.plan.sends_per_day
    plan = owner.plan
    plan.sends_per_day = 2
    plan.save()
    email_send(account=owner, mailbox=sender, to=["a@b.example"], text="1")
    email_send(account=owner, mailbox=sender, to=["a@b.example"], text="2")
    with pytest.raises(LimitReached) as err:
        email_send(account=owner, mailbox=sender, to=["a@b.example"], text="3")
    assert err.value.extra["limit"] == "sends_per_day"
    assert "2 sent emails per day" in err.value.detail and "last 24 hours" in err.value.detail
    assert Email.objects.filter(mailbox=sender, folder=Folder.SENT).count() == 2
    plan.sends_per_day = limit
    plan.save()


def test_relay_failure_retries_then_marks_failed(owner, sender, settings, eager_tasks, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        copy = email_send(account=owner, mailbox=sender, to=["a@b.example"], text="x")
    copy.refresh_from_db()
    assert copy.delivery_status == Email.Delivery.FAILED
    assert Event.objects.filter(account=owner, type="email.failed").count() == 1


def test_tracking_events_move_status_forward_only(owner, sender):
    copy = email_send(account=owner, mailbox=sender, to=["a@b.example"], text="x")
    email_set_delivery(email_id=copy.id, status="sent", esp_message_id="<abc.123@mg.example>")

    class Event_:
        def __init__(self, event_type):
            self.event_type, self.message_id, self.recipient, self.description = event_type, "abc.123@mg.example", "a@b.example", ""

    on_tracking(sender=None, event=Event_("delivered"), esp_name="Mailgun")
    copy.refresh_from_db()
    assert copy.delivery_status == "delivered"
    on_tracking(sender=None, event=Event_("bounced"), esp_name="Mailgun")
    on_tracking(sender=None, event=Event_("delivered"), esp_name="Mailgun")
    copy.refresh_from_db()
    assert copy.delivery_status == "bounced"
    types = list(Event.objects.filter(account=owner, type__startswith="email.").values_list("type", flat=True))
    assert types.count("email.delivered") == 1 and types.count("email.bounced") == 1


def _files(root):
    return sorted(str(path) for path in root.rglob("*") if path.is_file())


def test_send_to_a_suspended_hosted_address_is_a_bounce_for_it_not_a_delivery(
        owner, sender, recipient_mailbox, django_capture_on_commit_callbacks):
    mailbox_set_status(mailbox=recipient_mailbox, status="suspended")
    with django_capture_on_commit_callbacks(execute=True):
        copy = email_send(account=owner, mailbox=sender, to=[recipient_mailbox.address], text="x")
    copy.refresh_from_db()
    assert copy.delivery_status == Email.Delivery.BOUNCED
    assert recipient_mailbox.address in copy.delivery_detail and "5.2.1" in copy.delivery_detail
    assert not Email.objects.filter(mailbox=recipient_mailbox).exists()
    types = set(Event.objects.filter(account=owner, type__startswith="email.").values_list("type", flat=True))
    assert "email.bounced" in types and "email.delivered" not in types


def test_a_full_hosted_recipient_bounces_alone_and_the_others_still_get_the_message(
        owner, sender, recipient_mailbox, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    Mailbox.objects.filter(pk=recipient_mailbox.pk).update(storage_used=recipient_mailbox.account.plan.storage_bytes)
    with django_capture_on_commit_callbacks(execute=True):
        copy = email_send(account=owner, mailbox=sender, to=[recipient_mailbox.address, "bob@elsewhere.example"],
                          subject="Both", text="x")
    assert [m.rcpt_tos for m in smtp_relay.messages] == [["bob@elsewhere.example"]]
    assert not Email.objects.filter(mailbox=recipient_mailbox).exists()
    copy.refresh_from_db()
    assert copy.delivery_status == Email.Delivery.BOUNCED
    assert f"{recipient_mailbox.address}: 552 5.2.2" in copy.delivery_detail
    assert recipient_mailbox.account.plan.name not in copy.delivery_detail  # the other tenant's plan stays private
    types = list(Event.objects.filter(account=owner, type__startswith="email.").values_list("type", flat=True))
    assert types == ["email.sent", "email.bounced"]


def test_a_send_that_rolls_back_leaves_no_file_in_storage(owner, sender, recipient_mailbox, settings, monkeypatch):
    from pathlib import Path

    from mailboxes.outbound import send

    def breaks(**kwargs):
        raise RuntimeError("database went away")

    receive(sender, subject="already here")
    before = _files(Path(settings.MEDIA_ROOT))
    monkeypatch.setattr(send, "deliver_hosted", breaks)
    with pytest.raises(RuntimeError):
        email_send(account=owner, mailbox=sender, to=[recipient_mailbox.address], text="x")
    assert _files(Path(settings.MEDIA_ROOT)) == before
    assert not Email.objects.filter(mailbox=sender, folder=Folder.SENT).exists()


def test_a_reply_moves_its_thread_to_the_top(owner, sender):
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import Thread

    parent = receive(sender, subject="Old question", to="alice@brand.example")  # no Message-ID to thread by
    Thread.objects.filter(pk=parent.thread_id).update(last_message_at=timezone.now() - timedelta(days=30))
    receive(sender, subject="Something newer", to="alice@brand.example")
    reply = email_send(account=owner, mailbox=sender, to=["carol@client.example"], text="Answer.",
                       reply_to_email_id=parent.id)
    thread = Thread.objects.get(pk=parent.thread_id)
    assert reply.thread_id == thread.pk and thread.message_count == 2
    assert thread.last_message_at == Email.objects.get(pk=reply.pk).received_at
    assert Thread.objects.filter(mailbox=sender).first() == thread
