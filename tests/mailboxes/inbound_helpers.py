"""Shared fixtures and message builders for the inbound mail tests (import the fixtures by name)."""

import socket
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from django.utils import timezone

from mailboxes.inbound.smtp import smtp_controller


def started_smtp_server(**options):
    """The real inbound SMTP server, started on a free loopback port; stop() it when done.

    It reads its settings (caps, line limit) as it starts. Tests that use it need
    django_db(transaction=True): the server thread sees committed rows only.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = smtp_controller(host="127.0.0.1", port=port, **options)
    controller.start()
    return controller


@pytest.fixture
def inbound_smtp():
    """The real inbound SMTP server with the default settings."""
    controller = started_smtp_server()
    yield controller
    controller.stop()


@pytest.fixture
def other_mailbox(outsider):
    return outsider.mailboxes.get()


def make_message(*, subject="Hello", sender="Alice Example <alice@example.com>", to="owner@example.org",
                 text="Hi there.\n", html=None, message_id=None, in_reply_to=None, references=None,
                 attachments=(), date=None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or timezone.now())
    if message_id:
        message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        message["References"] = " ".join(f"<{r}>" for r in references)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def nested_message(depth):
    body = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for level in range(depth):
        boundary = b"b%d" % level
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary + b"\r\n" + body +
                b"--" + boundary + b"--\r\n")
    return b"From: a@example.com\r\nTo: owner@example.org\r\nSubject: nest\r\nMIME-Version: 1.0\r\n" + body


def many_parts_message(count):
    parts = b"".join(b"--sep\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return (b"From: a@example.com\r\nTo: owner@example.org\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n" + parts + b"--sep--\r\n")
