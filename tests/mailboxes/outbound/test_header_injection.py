"""Header injection (CVE-2024-6923 class) from every source of an outbound header, attacked over HTTP and SMTP.

Each payload tries to add a second From, a Bcc, or to end the headers early so that the rest becomes
the body. Whatever the source (compose subject, a mailbox's display name, a recipient's display name,
the prefilled subject of a reply to stored hostile mail), the message on the wire must carry exactly
the headers we write, one From, and our body.
"""

import base64
import re
import smtplib
from email import policy
from email.parser import BytesParser
from html import unescape

import pytest
from django.urls import reverse

from mailboxes.models import Email, Folder, Mailbox
from mailboxes.outbound.composition import build_message, header_value
from core.errors import Invalid
from tests.mailboxes.inbound_helpers import make_message

INJECTED_FROM = "From: PayPal <service@paypal.com>"
Q_WORD = "=?utf-8?q?Invoice=0D=0AFrom:_PayPal_<service@paypal.com>?="


def _b(text):
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


PAYLOADS = {
    "q-word": Q_WORD,
    "b-word": _b(f"Invoice\r\n{INJECTED_FROM}"),
    "nested-b-in-q": _b(Q_WORD),
    "nested-twice": _b(_b(Q_WORD)),
    "split-across-words": "=?utf-8?q?Invoice=0D?= =?utf-8?q?=0AFrom:_PayPal_<service@paypal.com>?=",
    "ends-headers": "=?utf-8?q?Hi=0D=0A=0D=0A<h1>Pay_now</h1>?=",
    "bcc-lf": "=?UTF-8?Q?=0A?=Bcc: injected@example.com",
    "lowercase-q-bcc": "=?utf-8?q?x=0d=0abcc:_injected@example.com?=",
    "latin1-b": "=?iso-8859-1?b?" + base64.b64encode(b"Hi\r\nBcc: injected@example.com").decode() + "?=",
    "raw-crlf": f"Invoice\r\n{INJECTED_FROM}",
    "raw-lf": "Invoice\nBcc: injected@example.com",
    "raw-cr": "Invoice\rBcc: injected@example.com",
    "raw-nel": f"Invoice\x85{INJECTED_FROM}",
    "u2028": f"Invoice\u2028{INJECTED_FROM}",
    "u2029": f"Invoice\u2029{INJECTED_FROM}",
    "nul": "Invoice\x00Bcc: injected@example.com",
}
OUR_HEADERS = {"dkim-signature", "from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
               "mime-version", "content-type", "content-transfer-encoding"}


def _assert_one_clean_message(raw, *, sender_address):
    """What a receiving MTA would see: our headers only, one From (ours), no Bcc, our body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    names = [line.split(b":", 1)[0].decode("ascii", "replace").lower()
             for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert set(names) <= OUR_HEADERS, names
    assert names.count("from") == 1 and names.count("subject") <= 1 and "bcc" not in names
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert [a.addr_spec for a in parsed["From"].addresses] == [sender_address]
    assert b"Pay_now" not in body and b"<h1>" not in body
    assert parsed.get_content_type() == "text/plain"
    for line in head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line and b"\x85" not in line


def _relayed(smtp_relay):
    [envelope] = smtp_relay.messages
    return envelope.original_content


def _signed_in(client, account):
    client.force_login(account.users.get())
    return client


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_compose_subject_cannot_inject_headers(client, owner, sender, smtp_relay, eager_tasks, payload,
                                               django_capture_on_commit_callbacks):
    _signed_in(client, owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mail:compose"), {"sender": str(sender.id), "to": "victim@client.example", "subject": payload, "text": "Our body."})
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        _assert_one_clean_message(_relayed(smtp_relay), sender_address=sender.address)
        copy = Email.objects.get(mailbox=sender, folder=Folder.SENT)
        assert "\n" not in copy.subject and "\r" not in copy.subject
    else:
        assert not smtp_relay.messages


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_mailbox_display_name_with_a_line_break_is_refused(client, owner, sender, payload):
    _signed_in(client, owner)
    response = client.post(reverse("mailboxes:detail", args=[sender.id]),
                           {"display_name": payload, "forwarding_addresses": "", "forward_keep_copy": "on"})
    assert response.status_code == 400  # the service's refusal, or the form's (too long, NUL) before it
    sender.refresh_from_db()
    assert sender.display_name == "Alice Brand"


# What an older version could have stored: one line by its own check, at most 120 characters, and never a
# NUL (PostgreSQL refuses it in text).
STORABLE = {name: payload for name, payload in PAYLOADS.items() if len(payload) <= 120 and "\x00" not in payload}


@pytest.mark.parametrize("payload", STORABLE.values(), ids=STORABLE.keys())
def test_a_hostile_display_name_already_stored_still_sends_clean_headers(owner, sender, smtp_relay, eager_tasks,
                                                                        payload, django_capture_on_commit_callbacks):
    from mailboxes.outbound.send import email_send

    Mailbox.objects.filter(pk=sender.pk).update(display_name=payload)  # as written by an older version
    sender.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        email_send(account=owner, mailbox=sender, to=["victim@client.example"], subject="Hello", text="Our body.")
    _assert_one_clean_message(_relayed(smtp_relay), sender_address=sender.address)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_recipient_display_name_with_a_line_break_is_refused(client, owner, sender, smtp_relay, payload):
    _signed_in(client, owner)
    response = client.post(reverse("mail:compose"), {"sender": str(sender.id), "to": f'"{payload}" <victim@client.example>', "subject": "Hello", "text": "Our body."})
    assert response.status_code == 400
    assert not smtp_relay.messages and not Email.objects.filter(mailbox=sender, folder=Folder.SENT).exists()


def test_an_encoded_but_harmless_recipient_name_is_sent_decoded(owner, sender, smtp_relay, eager_tasks,
                                                                django_capture_on_commit_callbacks):
    from mailboxes.outbound.send import email_send

    with django_capture_on_commit_callbacks(execute=True):
        email_send(account=owner, mailbox=sender, to=["=?utf-8?q?Caf=C3=A9_Owner?= <owner@cafe.example>"], text="Hi.")
    parsed = BytesParser(policy=policy.default).parsebytes(_relayed(smtp_relay))
    [address] = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Café Owner", "owner@cafe.example")



@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the SMTP server thread must see the rows
@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_replying_to_hostile_mail_received_over_smtp_sends_clean_headers(client, owner, sender, inbound_smtp,
                                                                        smtp_relay, eager_tasks, payload):
    """The external path: the Subject arrives encoded a second time, is stored, and prefills the reply."""
    wire_subject = _b(payload)
    raw = make_message(subject="placeholder", to=sender.address, message_id="evil@attacker.example")
    raw = raw.replace(b"Subject: placeholder", b"Subject: " + wire_subject.encode()).replace(b"\n", b"\r\n")
    with smtplib.SMTP(inbound_smtp.hostname, inbound_smtp.port, timeout=10) as smtp:
        smtp.sendmail("attacker@attacker.example", [sender.address], raw)
    parent = Email.objects.get(mailbox=sender, folder=Folder.INBOX)
    _signed_in(client, owner)
    form = client.get(reverse("mail:reply", args=[parent.id]), follow=True).content.decode()
    subject = unescape(re.search(r'name="subject" value="([^"]*)"', form).group(1))
    response = client.post(reverse("mail:compose"), {"reply": str(parent.id), "to": "victim@client.example", "subject": subject, "text": "Our body."})
    assert response.status_code == 302
    _assert_one_clean_message(_relayed(smtp_relay), sender_address=sender.address)


def test_a_message_whose_headers_do_not_read_back_is_refused(monkeypatch):
    """The second line of defence: if folding ever produced an extra header, nothing leaves."""
    from email.message import EmailMessage

    real = EmailMessage.as_bytes

    def folded_badly(self, *args, **kwargs):
        return real(self, *args, **kwargs).replace(b"\r\nSubject: ", b"\r\nBcc: injected@example.com\r\nSubject: ", 1)

    monkeypatch.setattr(EmailMessage, "as_bytes", folded_badly)
    with pytest.raises(Invalid) as refused:
        build_message(sender=("", "a@brand.example"), to=[("", "b@client.example")], cc=[], subject="Hi", text="x",
                      html="", attachments=[], message_id="1@brand.example")
    assert refused.value.code == "unsafe_header"


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_header_value_leaves_no_line_break_and_no_encoded_word(payload):
    value = header_value(payload)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", value)
    assert not re.search(r"=\?[^?\s]*\?[^?\s]*\?", value)
