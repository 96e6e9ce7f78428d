"""A send holds its message once (about 1.5 times its attachments), and large sends queue per process.

The message used to be built by the email package, signed by dkimpy over the whole of it and parsed back
for the SENT copy, each holding several copies: an 8 MB send peaked at 12 times its attachments.
"""

import base64
import email.generator
import os
import threading
import time
import tracemalloc
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage

import dkim
import pytest

from mailboxes.inbound.parsing import parse_message
from mailboxes.models import Email, Folder
from mailboxes.outbound import composition
from mailboxes.outbound.composition import build_message, dkim_sign, signed_message
from mailboxes.outbound.large_sends import large_send_slot
from mailboxes.outbound.send import email_send, email_send_forward
from core.errors import RateLimited
from agent.gates import Actor
from agent.operations import registry
from tests.api_helpers import call, token_for

MB = 1024 * 1024


@pytest.mark.parametrize("path", ["service", "tool", "hosted"])
def test_an_8_mb_send_peaks_within_three_times_its_attachments(owner, outsider, mailbox, path):
    """The stored message alone is 1.37 times its attachments (base64 in 76-character lines with CRLF); the
    send peaks at 1.5 times (the tool at 2.5: it also decodes the base64 it was given). 3 leaves room for the
    allocator and Python versions; it was 11.6 and 12.6 before."""
    files = [(f"part-{index}.bin", "application/octet-stream", os.urandom(2 * MB)) for index in range(4)]
    email_send(account=owner, mailbox=mailbox, to=["warm@elsewhere.example"], text="x",
               attachments=[("w.bin", "application/octet-stream", b"w" * 1000)])  # imports and caches first
    if path in ("service", "hosted"):
        # hosted: the recipient is a mailbox here, whose copy is stored from the same parse (10 times before)
        to = [outsider.mailboxes.get().address] if path == "hosted" else ["bob@elsewhere.example"]

        def send():
            return email_send(account=owner, mailbox=mailbox, to=to, subject="Figures", text="See attached.",
                              attachments=files)
    else:
        operation = registry()["qmailing_send_email"]
        arguments = operation.input.model_validate({
            "mailbox_id": mailbox.id, "to": ["bob@elsewhere.example"], "subject": "Figures", "text": "See attached.",
            "attachments": [{"filename": name, "content_base64": base64.b64encode(content).decode()}
                            for name, _, content in files]})
        actor = Actor(account=owner, user=None, token=None, scopes=frozenset({"email:send"}))

        def send():
            return Email.objects.get(pk=operation.run(actor=actor, args=arguments).id)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        copy = send()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak <= 3 * 8 * MB, f"peak {peak / MB:.1f} MB for 8 MB of attachments"
    stored = []
    for attachment in copy.attachments.order_by("position"):
        with attachment.file.open("rb") as handle:
            stored.append(handle.read())
    assert stored == [content for _, _, content in files]


def _reference(**fields):
    """The message as build_message made it before: every attachment's bytes given to the email package."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = composition._address(*fields["sender"])
    if fields["to"]:
        message["To"] = [composition._address(*pair) for pair in fields["to"]]
    if fields["cc"]:
        message["Cc"] = [composition._address(*pair) for pair in fields["cc"]]
    message["Subject"] = composition.header_value(fields["subject"])
    message["Date"] = "Tue, 02 Jan 2024 03:04:05 GMT"
    message["Message-ID"] = f"<{fields['message_id']}>"
    if fields.get("in_reply_to"):
        message["In-Reply-To"] = f"<{fields['in_reply_to']}>"
    if fields.get("references"):
        message["References"] = " ".join(f"<{ref}>" for ref in fields["references"])
    message["MIME-Version"] = "1.0"
    message.set_content(fields["text"] or "")
    if fields["html"]:
        message.add_alternative(fields["html"], subtype="html")
    for filename, content_type, content in fields["attachments"]:
        maintype, subtype = composition._content_type(content_type).split("/", 1)
        message.add_attachment(bytes(content), maintype=maintype, subtype=subtype,
                               filename=composition.header_value(filename, limit=255) or "attachment")
    return message.as_bytes()


MESSAGES = {
    "text only": dict(text="Hello,\n\nsee you.\n", html="", attachments=[]),
    "empty": dict(text="", html="", attachments=[]),
    "blank lines and spaces at the end": dict(text="Hi  there \t\nline   two   \n\n\n\n", html="", attachments=[]),
    "html and attachments": dict(
        text="Caf\u00e9 \u2603 report\n" * 40, html="<p>Caf\u00e9  <b>report</b></p>   \n\n",
        attachments=[("r\u00e9sum\u00e9.pdf", "application/pdf", os.urandom(57 * 1024 + 1)),
                     ("notes.txt", "text/plain", b"total:  42 EUR  \r\n\r\n"), ("empty.bin", "", b""),
                     ("", "not a type", os.urandom(58)), ("line.bin", "image/png", os.urandom(57))]),
    "a reply with an attachment": dict(text="Agreed.\n", html="", in_reply_to="p-1@client.example",
                                       references=["r-0@client.example", "p-1@client.example"],
                                       attachments=[("a.bin", "application/octet-stream", os.urandom(300_000))]),
}


@pytest.mark.parametrize("fields", MESSAGES.values(), ids=MESSAGES.keys())
def test_the_message_is_byte_for_byte_what_the_email_package_and_dkimpy_make(mailbox, monkeypatch, fields):
    """Same bytes as the email package with the attachments in, same signature as dkim.sign over the
    whole message, and the SENT copy's fields as parse_message reads the signed bytes."""
    fields = dict(sender=("Ada", mailbox.address), to=[("Bob", "bob@client.example")], cc=[("", "c@client.example")],
                  subject="Report  4", message_id="m-1@brand.example", **fields)
    boundaries = iter(range(1000))
    monkeypatch.setattr(email.generator.Generator, "_make_boundary",
                        classmethod(lambda cls, text=None: f"===============b{next(boundaries)}=="))
    monkeypatch.setattr(composition, "datetime", type("Fixed", (), {"now": staticmethod(
        lambda tz=None: datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))}))
    monkeypatch.setattr(time, "time", lambda: 1_704_164_645)
    reference = _reference(**fields)
    boundaries = iter(range(1000))
    assert build_message(**fields) == reference
    boundaries = iter(range(1000))
    signed = signed_message(domain=mailbox.domain, **fields)
    assert signed.raw == dkim_sign(raw=reference, domain=mailbox.domain)
    record = f"v=DKIM1; k=rsa; p={mailbox.domain.dkim_public_key}".encode()
    assert dkim.verify(signed.raw, dnsfunc=lambda name, timeout=5: record)
    parsed = parse_message(signed.raw)
    for attachment in parsed.attachments:
        attachment.text = ""  # ingest does not store it; the extraction worker decodes it from the raw message
    assert signed.parsed == parsed


def _hold_a_slot():
    """A large send in another thread holding its slot until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with large_send_slot(attachment_bytes=10**9):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    return release, thread


@pytest.fixture
def one_slot(settings):
    settings.QMAILING_MAX_CONCURRENT_LARGE_SENDS = 1
    settings.QMAILING_LARGE_SEND_BYTES = 1000
    settings.QMAILING_LARGE_SEND_WAIT_SECONDS = 0.2


def test_a_large_send_waits_then_is_refused_while_the_slots_are_taken_and_a_small_one_goes(owner, mailbox, one_slot):
    release, holder = _hold_a_slot()
    try:
        started = time.monotonic()
        with pytest.raises(RateLimited) as refused:
            email_send(account=owner, mailbox=mailbox, to=["bob@elsewhere.example"], text="Big",
                       attachments=[("big.bin", "application/octet-stream", b"x" * 1001)])
        assert time.monotonic() - started >= 0.2
        assert (refused.value.status, refused.value.code, refused.value.headers["Retry-After"]) == (429, "rate_limited", "1")
        assert "Send it again in 1 second." in refused.value.detail
        assert not Email.objects.filter(mailbox=mailbox, folder=Folder.SENT).exists()
        small = email_send(account=owner, mailbox=mailbox, to=["bob@elsewhere.example"], text="Small",
                           attachments=[("small.bin", "application/octet-stream", b"x" * 1000)])
        assert small.folder == Folder.SENT
    finally:
        release.set()
        holder.join()
    sent = email_send(account=owner, mailbox=mailbox, to=["bob@elsewhere.example"], text="Big",
                      attachments=[("big.bin", "application/octet-stream", b"x" * 1001)])
    assert sent.has_attachments


def test_the_refusal_reaches_rest_as_a_problem_with_retry_after(client, owner, mailbox, one_slot):
    token = token_for(owner, scopes="email:send")
    arguments = {"mailbox_id": mailbox.id, "to": ["bob@elsewhere.example"], "text": "Big",
                 "attachments": [{"filename": "big.bin", "content_base64": base64.b64encode(b"x" * 2000).decode()}]}
    release, holder = _hold_a_slot()
    try:
        response = call(client, registry()["qmailing_send_email"], token=token, args=arguments)
    finally:
        release.set()
        holder.join()
    assert response.status_code == 429 and response["Retry-After"] == "1"
    assert response.json()["code"] == "rate_limited" and response.json()["retryAfter"] == 1
    assert call(client, registry()["qmailing_send_email"], token=token, args=arguments).status_code == 201


def test_a_forward_of_large_attachments_takes_the_same_slots(owner, mailbox, one_slot):
    original = email_send(account=owner, mailbox=mailbox, to=["bob@elsewhere.example"], text="Big",
                          attachments=[("big.bin", "application/octet-stream", b"x" * 1001)])
    release, holder = _hold_a_slot()
    try:
        with pytest.raises(RateLimited):
            email_send_forward(account=owner, email=original, to=["carol@elsewhere.example"])
    finally:
        release.set()
        holder.join()
    forwarded = email_send_forward(account=owner, email=original, to=["carol@elsewhere.example"])
    assert forwarded.attachments.get().size == 1001
