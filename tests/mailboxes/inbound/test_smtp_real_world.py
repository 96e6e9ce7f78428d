"""Real-world shapes of legitimate mail over the real SMTP server: long lines, bare LF, CRLF in text.

A 5xx is a permanent bounce for the sender, so none of these may get one.
"""

import base64
import smtplib
import socket
import textwrap

import pytest

from mailboxes.models import Attachment, Email
from tests.mailboxes.inbound_helpers import started_smtp_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread must see the rows

HEAD = ("From: Newsletter <news@shop.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Mon, 02 Apr 2012 18:26:00 +0000\r\nMessage-ID: <{subject}@shop.example>\r\nMIME-Version: 1.0\r\n")



def _send(server, mailbox, raw):
    with socket.create_connection((server.hostname, server.port), timeout=10) as sock:
        # A raw client: smtplib would rewrite bare LF, and these tests need the bytes exactly as sent.
        reader = sock.makefile("rb")

        def reply():
            lines = []
            while True:
                line = reader.readline()
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)

        reply()
        for command in (b"EHLO mta.shop.example", b"MAIL FROM:<news@shop.example>",
                        b"RCPT TO:<" + mailbox.address.encode() + b">", b"DATA"):
            sock.sendall(command + b"\r\n")
            reply()
        sock.sendall(raw + (b"" if raw.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        answer = reply()
        sock.sendall(b"QUIT\r\n")
        return answer


def _stored(mailbox):
    email = Email.objects.get(mailbox=mailbox)
    with email.raw.open("rb") as handle:
        return email, handle.read()


def test_html_with_a_1500_character_line_is_accepted_kept_and_recorded(inbound_smtp, mailbox):
    html = "<html><body><table>" + "".join(f"<td>cell {i}</td>" for i in range(100)) + "</table></body></html>"
    assert len(html) > 1500
    raw = (HEAD.format(to=mailbox.address, subject="wide") + "Content-Type: text/html; charset=utf-8\r\n\r\n"
           + html + "\r\n").encode()
    assert _send(inbound_smtp, mailbox, raw).startswith(b"250")
    email, stored = _stored(mailbox)
    assert stored.endswith(raw)  # byte for byte after our trace and authentication headers
    assert any(defect.startswith("LineTooLong") for defect in email.defects)
    assert "cell 99" in email.text


def test_a_base64_part_with_4400_character_lines_is_accepted(inbound_smtp, mailbox):
    payload = bytes(range(256)) * 13
    encoded = base64.b64encode(payload).decode()
    assert len(encoded) > 4400
    raw = (HEAD.format(to=mailbox.address, subject="b64") + 'Content-Type: multipart/mixed; boundary="sep"\r\n\r\n'
           "--sep\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
           '--sep\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
           'Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
           + encoded + "\r\n--sep--\r\n").encode()
    assert _send(inbound_smtp, mailbox, raw).startswith(b"250")
    email, stored = _stored(mailbox)
    assert stored.endswith(raw)
    attachment = Attachment.objects.get(email=email)
    with attachment.file.open("rb") as handle:
        assert handle.read() == payload


def test_a_bare_lf_message_from_a_sloppy_client_is_accepted_byte_for_byte(inbound_smtp, mailbox):
    body = textwrap.dedent("""\
        Hi,

        the invoice is attached as promised.
        Thanks!
        """)
    raw = (HEAD.format(to=mailbox.address, subject="bare").replace("\r\n", "\n")
           + "Content-Type: text/plain; charset=us-ascii\n\n" + body).encode()
    assert b"\r" not in raw
    assert _send(inbound_smtp, mailbox, raw).startswith(b"250")
    email, stored = _stored(mailbox)
    assert stored.endswith(raw + b"\r\n")  # the client's bytes, then the CRLF that ends DATA
    assert email.subject == "bare" and "\r" not in email.text and email.text.startswith("Hi,")


def test_a_line_above_the_limit_gets_500_5_5_2_and_nothing_is_stored(mailbox, settings):
    settings.QMAILING_SMTP_MAX_LINE_BYTES = 64 * 1024
    server = started_smtp_server()  # sessions read the limit as they start
    raw = (HEAD.format(to=mailbox.address, subject="huge") + "\r\n" + "x" * (80 * 1024) + "\r\n").encode()
    try:
        answer = _send(server, mailbox, raw)
    finally:
        server.stop()
    assert answer.startswith(b"500 5.5.2") and b"65536" in answer
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_crlf_never_reaches_the_stored_text_fields(inbound_smtp, mailbox):
    raw = (HEAD.format(to=mailbox.address, subject="crlf") + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           "\r\nFirst line=0D=0Asecond line\r\n\r\nOn Mon, Apr 2, 2012, Ann wrote:\r\n> earlier\r\n"
           "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>First line</p>\r\n<p>second line</p>\r\n--b--\r\n").encode()
    with smtplib.SMTP(inbound_smtp.hostname, inbound_smtp.port, timeout=10) as client:
        client.sendmail("news@shop.example", [mailbox.address], raw)
    email, stored = _stored(mailbox)
    assert b"\r\n" in stored
    for value in (email.text, email.text_clean, email.html, email.snippet):
        assert "\r" not in value
    assert email.text.startswith("First line\nsecond line")
