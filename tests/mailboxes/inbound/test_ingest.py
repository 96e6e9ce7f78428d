import hashlib
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from django.utils import timezone

from tests.mailboxes.counters_check import counters_exact
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Email, Extraction, Folder, Thread
from mailboxes.services import mailbox_set_status
from core.errors import LimitReached
from tests.mailboxes.inbound.pdfs import pdf_build
from tests.mailboxes.inbound_helpers import make_message
from events.models import Event, EventType


def tiny_pdf(text):
    """A one-page PDF showing `text`."""
    return pdf_build([f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()])


def test_inbound_email_keeps_exact_raw_bytes_and_parsed_fields(mailbox):
    raw = make_message(subject="Quarterly numbers", to="Owner <owner@example.org>, bob@example.net",
                       message_id="abc@example.com", text="Numbers attached.\n")
    email = email_ingest(mailbox=mailbox, raw=raw)
    email.refresh_from_db()
    with email.raw.open("rb") as handle:
        assert handle.read() == raw
    assert email.size == len(raw)
    assert email.direction == Email.Direction.INBOUND and email.folder == Folder.INBOX and not email.is_read
    assert (email.from_address, email.from_name) == ("alice@example.com", "Alice Example")
    assert email.to == [{"address": "owner@example.org", "name": "Owner"}, {"address": "bob@example.net", "name": ""}]
    assert email.subject == "Quarterly numbers"
    assert email.message_id == "abc@example.com"
    assert email.date is not None
    assert email.text.strip() == "Numbers attached." and email.snippet == "Numbers attached."
    assert email.defects == []


def test_html_only_message_gets_readable_text_with_links_and_sanitised_html(mailbox):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "owner@example.org", "Offer"
    message.set_content('<p>Click <a href="https://example.com/deal">the deal</a></p><script>alert(1)</script>'
                        '<img src="x" onerror="alert(2)">', subtype="html")
    email = email_ingest(mailbox=mailbox, raw=message.as_bytes())
    assert email.text == "Click the deal [1]" and email.links == {"1": "https://example.com/deal"}
    assert "<script" not in email.html and "onerror" not in email.html and "alert(1)" not in email.html
    assert 'href="https://example.com/deal"' in email.html


def test_reply_chain_is_one_thread_with_count_and_latest_time(mailbox):
    first = email_ingest(mailbox=mailbox, raw=make_message(subject="Launch plan", message_id="m1@x"))
    second = email_ingest(mailbox=mailbox, raw=make_message(subject="Re: Launch plan", message_id="m2@x",
                                                             in_reply_to="m1@x", references=["m1@x"]))
    # Only References (no In-Reply-To) and a changed subject: still the same conversation.
    third = email_ingest(mailbox=mailbox, raw=make_message(subject="Changed topic", message_id="m3@x",
                                                            references=["m1@x", "m2@x"]))
    assert first.thread_id == second.thread_id == third.thread_id
    thread = Thread.objects.get(pk=first.thread_id)
    assert thread.message_count == 3
    assert thread.subject == "Launch plan"
    assert thread.last_message_at == Email.objects.get(pk=third.pk).received_at
    assert second.in_reply_to == "m1@x" and third.references == ["m1@x", "m2@x"]


def test_threads_never_cross_mailboxes(mailbox, other_mailbox):
    email_ingest(mailbox=mailbox, raw=make_message(subject="Shared", message_id="s1@x"))
    reply = email_ingest(mailbox=other_mailbox, raw=make_message(subject="Re: Shared", in_reply_to="s1@x"))
    assert reply.thread.mailbox_id == other_mailbox.pk
    assert Thread.objects.get(pk=reply.thread_id).message_count == 1


def test_subject_fallback_joins_a_recent_thread_only_without_references(mailbox):
    first = email_ingest(mailbox=mailbox, raw=make_message(subject="Invoice 7"))
    same = email_ingest(mailbox=mailbox, raw=make_message(subject="RE: Fwd: AW: invoice 7"))
    with_refs = email_ingest(mailbox=mailbox, raw=make_message(subject="Re: Invoice 7", in_reply_to="unknown@x"))
    assert same.thread_id == first.thread_id
    assert with_refs.thread_id != first.thread_id


def test_a_known_message_id_wins_over_a_matching_subject(mailbox):
    original = email_ingest(mailbox=mailbox, raw=make_message(subject="Alpha", message_id="dup@x"))
    email_ingest(mailbox=mailbox, raw=make_message(subject="Beta"))
    # A second delivery of the same message, with a subject that matches another recent thread.
    again = email_ingest(mailbox=mailbox, raw=make_message(subject="Beta", message_id="dup@x"))
    assert again.thread_id == original.thread_id
    assert Thread.objects.get(pk=original.thread_id).message_count == 2

def test_subject_fallback_ignores_threads_older_than_the_window(mailbox):
    old = email_ingest(mailbox=mailbox, raw=make_message(subject="Weekly report", date=timezone.now() - timedelta(days=30)),
                       imported=True)
    new = email_ingest(mailbox=mailbox, raw=make_message(subject="Weekly report"))
    assert new.thread_id != old.thread_id


def test_text_clean_drops_quoted_history_and_signature(mailbox):
    text = "Sounds good, ship it.\n\n-- \nAlice\nCEO\n\nOn Mon, 3 Jun 2024, Bob <bob@example.com> wrote:\n> Ship?\n"
    email = email_ingest(mailbox=mailbox, raw=make_message(text=text))
    assert email.text_clean == "Sounds good, ship it."
    assert "Ship?" in email.text


def test_attachments_are_retrievable_with_sha256_and_extracted_text(mailbox, eager_tasks,
                                                                     django_capture_on_commit_callbacks):
    pdf = tiny_pdf("Invoice number 4242")
    notes = "Meeting notes: budget approved.\n".encode()
    raw = make_message(attachments=[("invoice.pdf", "application/pdf", pdf), ("notes.txt", "text/plain", notes),
                                    ("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))])
    with django_capture_on_commit_callbacks(execute=True):  # the extraction task runs after commit
        email = email_ingest(mailbox=mailbox, raw=raw)
    attachments = list(email.attachments.order_by("position"))
    assert email.has_attachments and [a.filename for a in attachments] == ["invoice.pdf", "notes.txt", "logo.png"]
    for attachment, data in zip(attachments, [pdf, notes, None]):
        with attachment.file.open("rb") as handle:
            stored = handle.read()
        assert hashlib.sha256(stored).hexdigest() == attachment.sha256 and len(stored) == attachment.size
        if data is not None:
            assert stored == data
    assert "Invoice number 4242" in attachments[0].extracted_text
    assert attachments[1].extracted_text.startswith("Meeting notes")
    assert attachments[2].extracted_text == ""
    assert [a.extraction for a in attachments] == [Extraction.DONE, Extraction.DONE, Extraction.NONE]


def test_attachment_text_waits_for_the_worker_and_ingest_does_not_read_the_pdf(mailbox):
    raw = make_message(attachments=[("invoice.pdf", "application/pdf", tiny_pdf("Invoice number 4242")),
                                    ("notes.txt", "text/plain", b"Meeting notes")])
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert [(a.extraction, a.extracted_text) for a in email.attachments.order_by("position")] == [
        (Extraction.PENDING, ""), (Extraction.PENDING, "")]


def test_hostile_pdf_attachment_is_kept_without_text(mailbox, eager_tasks, django_capture_on_commit_callbacks):
    broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\nxref\nnonsense\n%%EOF" + b"\xff" * 500
    with django_capture_on_commit_callbacks(execute=True):
        email = email_ingest(mailbox=mailbox, raw=make_message(attachments=[("x.pdf", "application/pdf", broken)]))
    attachment = email.attachments.get()
    assert attachment.extracted_text == "" and attachment.size == len(broken)
    assert attachment.extraction == Extraction.FAILED


def test_counters_equal_a_recount_after_ingest(mailbox):
    email_ingest(mailbox=mailbox, raw=make_message(subject="one"))
    email_ingest(mailbox=mailbox, raw=make_message(subject="two"), is_read=True)
    email_ingest(mailbox=mailbox, raw=make_message(subject="junk"), folder=Folder.SPAM)
    email_ingest(mailbox=mailbox, raw=make_message(subject="mine"), direction=Email.Direction.OUTBOUND,
                 folder=Folder.SENT, is_read=True, delivery_status=Email.Delivery.QUEUED)
    assert counters_exact(mailbox)[:2] == (4, 1)
    assert mailbox.storage_used == sum(Email.objects.filter(mailbox=mailbox).values_list("size", flat=True))


def test_inbound_mail_publishes_email_received_and_sent_copies_do_not(mailbox):
    email = email_ingest(mailbox=mailbox, raw=make_message(subject="Ping"))
    email_ingest(mailbox=mailbox, raw=make_message(subject="Pong"), direction=Email.Direction.OUTBOUND,
                 folder=Folder.SENT, is_read=True, delivery_status=Email.Delivery.QUEUED)
    events = list(Event.objects.filter(account=mailbox.account, type=EventType.EMAIL_RECEIVED))
    assert len(events) == 1
    assert events[0].mailbox_id == mailbox.pk
    assert events[0].payload == {"email_id": str(email.id), "mailbox_id": str(mailbox.pk), "thread_id": str(email.thread_id),
                                 "from": {"address": "alice@example.com", "name": "Alice Example"},
                                 "subject": "Ping", "snippet": email.snippet, "folder": "INBOX",
                                 "has_attachments": False}
    assert email.snippet.startswith("Hi there")


def test_full_storage_refuses_with_limit_reached_and_keeps_nothing(mailbox):
    plan = mailbox.account.plan
    plan.storage_bytes = 3000  # plans are admin-editable rows; a tiny plan keeps the test fast
    plan.save(update_fields=["storage_bytes"])
    email_ingest(mailbox=mailbox, raw=make_message(text="x" * 1000))
    with pytest.raises(LimitReached) as caught:
        email_ingest(mailbox=mailbox, raw=make_message(text="y" * 2500))
    assert caught.value.extra["limit"] == "storage"
    assert Email.objects.filter(mailbox=mailbox).count() == 1
    mailbox.refresh_from_db()
    assert mailbox.message_count == 1


def test_hosted_delivery_stores_one_copy_per_distinct_active_mailbox(mailbox, other_mailbox, owner):
    from mailboxes.services import mailbox_create
    from domains.services import shared_domain_get

    paused = mailbox_create(account=owner, domain=shared_domain_get(), local_part="paused")
    mailbox_set_status(mailbox=paused, status="suspended")
    local, domain = mailbox.address.split("@")
    recipients = [mailbox.address, f"{local}+news@{domain}", mailbox.address.upper(), other_mailbox.address,
                  paused.address, "nobody-here@example.com"]
    emails = deliver_hosted(raw=make_message(), recipients=recipients, envelope_from="alice@example.com").emails
    assert sorted(e.mailbox_id for e in emails) == sorted([mailbox.pk, other_mailbox.pk])
    assert not Email.objects.filter(mailbox=paused).exists()


@pytest.mark.parametrize("subject", [b"=?UTF-8?Q?=0A?=Bcc: injected@example.com",
                                     b"=?UTF-8?Q?Hi=0D=0ABcc=3A_injected=40example=2Ecom?="])
def test_encoded_newline_in_subject_cannot_inject_a_bcc_into_a_reply(mailbox, subject):
    """CVE-2024-6923: a decoded CR/LF in a header must never become a header line of its own."""
    raw = b"From: attacker@example.com\r\nTo: owner@example.org\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert "\n" not in email.subject and "\r" not in email.subject and "injected@example.com" in email.subject
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = mailbox.address, email.from_address, f"Re: {email.subject}"
    reply.set_content("ok")
    reparsed = message_from_bytes(reply.as_bytes(), policy=policy.default)
    assert reparsed["Bcc"] is None
