"""Hostile structure over the real SMTP server: nesting thousands deep, right-to-left filenames."""

import smtplib
import time
from email.message import EmailMessage

import pytest
from django.urls import reverse

from mailboxes.inbound.ingest import email_ingest
from mailboxes.inbound.parsing import MAX_PARTS
from mailboxes.models import Attachment, Email
from tests.timing import within

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread must see the rows

BIDI = ("\u202e", "\u202d", "\u202a", "\u202b", "\u202c", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f",
        "\u061c", "\u200b", "\ufeff")


def deep_message(depth, *, to):
    """A message nested `depth` multiparts deep, built in linear time."""
    opening = [b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level) for level in range(depth)]
    closing = [b"--b%d--\r\n" % level for level in reversed(range(depth))]
    head = b"From: Mallory <mallory@attacker.example>\r\nTo: " + to.encode() + b"\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    return head + b"".join(opening) + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + b"".join(closing)



@pytest.mark.parametrize("depth", [MAX_PARTS + 1, 1_000, 20_000])
@pytest.mark.latency
def test_nesting_thousands_deep_is_refused_with_554_5_6_0_quickly(inbound_smtp, mailbox, depth):
    raw = deep_message(depth, to=mailbox.address)
    started = time.monotonic()
    with smtplib.SMTP(inbound_smtp.hostname, inbound_smtp.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("mallory@attacker.example", [mailbox.address], raw)
    assert refused.value.smtp_code == 554 and b"5.6.0" in refused.value.smtp_error
    assert time.monotonic() - started < within(5)
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_an_imported_deep_message_is_kept_whole_with_its_headers_and_the_cap_recorded(mailbox):
    raw = deep_message(20_000, to=mailbox.address)
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert email.subject == "deep" and email.from_address == "mallory@attacker.example"
    assert any(defect.startswith("TooManyParts") for defect in email.defects)
    assert not any("RecursionError" in defect for defect in email.defects)
    with email.raw.open("rb") as handle:
        assert handle.read() == raw


def test_a_right_to_left_override_never_reaches_the_list_or_the_download_name(inbound_smtp, client, owner, mailbox):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@attacker.example", mailbox.address, "Your invoice"
    message.set_content("See attached.")
    for index, mark in enumerate(BIDI):
        message.add_attachment(b"MZ\x90\x00", maintype="application", subtype="octet-stream",
                               filename=f"invoice{index}{mark}gpj.exe")
    with smtplib.SMTP(inbound_smtp.hostname, inbound_smtp.port, timeout=10) as smtp:
        smtp.sendmail("a@attacker.example", [mailbox.address], message.as_bytes().replace(b"\n", b"\r\n"))
    email = Email.objects.get(mailbox=mailbox)
    names = list(Attachment.objects.filter(email=email).order_by("position").values_list("filename", flat=True))
    assert names == [f"invoice{index}gpj.exe" for index in range(len(BIDI))]
    client.force_login(owner.users.get())
    page = client.get(reverse("mail:detail", args=[email.id])).content.decode()
    assert "invoice0gpj.exe" in page and not any(mark in page for mark in BIDI)
    download = client.get(reverse("mail:attachment", args=[email.id, 0]))
    assert download.status_code == 200
    disposition = download["Content-Disposition"]
    assert "invoice0gpj.exe" in disposition and not any(mark in disposition for mark in BIDI)
    assert "%E2%80%AE" not in disposition.upper()


def test_a_filename_stored_before_the_fix_is_cleaned_when_shown_and_downloaded(client, owner, mailbox):
    from tests.mailboxes.outbound_helpers import receive

    email = receive(mailbox, attachments=[("report.txt", "text/plain", b"x")])
    Attachment.objects.filter(email=email).update(filename="invoice\u202egpj.exe")
    client.force_login(owner.users.get())
    page = client.get(reverse("mail:detail", args=[email.id])).content.decode()
    assert "invoicegpj.exe" in page and "\u202e" not in page
    disposition = client.get(reverse("mail:attachment", args=[email.id, 0]))["Content-Disposition"]
    assert "invoicegpj.exe" in disposition and "%E2%80%AE" not in disposition.upper()
