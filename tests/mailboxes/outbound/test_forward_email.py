"""Forwarding one stored email on request (qmailing_forward_email): note on top, attachments kept, same thread."""

from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Email
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.mailboxes.inbound_helpers import make_message


def test_forward_keeps_attachments_and_puts_the_note_on_top(client, owner, outsider, mailbox):
    original = email_ingest(mailbox=mailbox, raw=make_message(
        subject="Invoice 4711", sender="Ada <ada@example.com>", text="Please pay by Friday.\n",
        html="<p>Please pay by <b>Friday</b>.</p>", attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4 bytes")]))
    colleague = outsider.mailboxes.get()
    token = token_for(owner, scopes="email:send")
    response = call(client, registry()["qmailing_forward_email"], token=token, args={
        "email_id": original.id, "to": [colleague.address], "note": "Can you take this one?"})
    assert response.status_code == 201, response.content
    sent = response.json()
    assert sent["subject"] == "Fwd: Invoice 4711" and sent["folder"] == "SENT" and sent["has_attachments"]
    assert sent["thread_id"] == str(original.thread_id)
    received = Email.objects.get(mailbox=colleague)
    assert received.subject == "Fwd: Invoice 4711"
    assert received.text.index("Can you take this one?") < received.text.index("---------- Forwarded message")
    assert "From: Ada <ada@example.com>" in received.text and "Please pay by Friday." in received.text
    assert "<b>Friday</b>" in received.html
    attachment = received.attachments.get()
    assert (attachment.filename, attachment.content_type) == ("invoice.pdf", "application/pdf")
    with attachment.file.open("rb") as handle:
        assert handle.read() == b"%PDF-1.4 bytes"


def test_forward_refuses_attachments_over_the_cap_and_foreign_mail(client, owner, outsider, mailbox, settings):
    big = email_ingest(mailbox=mailbox, raw=make_message(attachments=[("big.bin", "application/octet-stream", b"x" * 4000)]))
    settings.QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES = 1000
    token = token_for(owner, scopes="email:send")
    response = call(client, registry()["qmailing_forward_email"], token=token, args={"email_id": big.id, "to": ["a@example.org"]})
    assert response.status_code == 413 and response.json()["code"] == "attachments_too_large"
    foreign = email_ingest(mailbox=outsider.mailboxes.get(), raw=make_message())
    response = call(client, registry()["qmailing_forward_email"], token=token, args={"email_id": foreign.id, "to": ["a@example.org"]})
    assert response.status_code == 404
    assert not Email.objects.filter(mailbox=mailbox, folder="SENT").exists()
