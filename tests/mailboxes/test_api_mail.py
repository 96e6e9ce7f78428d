"""The mail operations over REST as an agent uses them: search, threads, update, send, attachments."""

import base64
import re
import time
from email import message_from_bytes
from unittest import mock

import pytest

from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Email
from mailboxes.store.download import DOWNLOAD_TTL_SECONDS, INLINE_ATTACHMENT_BYTES, download_token
from mailboxes.store.operations import DEFAULT_TEXT_CHARS
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.mailboxes.inbound.newsletter import newsletter_message
from tests.mailboxes.inbound_helpers import make_message


@pytest.fixture
def op():
    return registry().__getitem__


@pytest.fixture
def token(owner):
    return token_for(owner, scopes="email:read email:write email:send")


def _receive(mailbox, **message):
    return email_ingest(mailbox=mailbox, raw=make_message(**message))


def test_search_finds_a_received_message(client, owner, outsider, mailbox, token, op):
    wanted = _receive(mailbox, subject="Quarterly invoice 4711", text="Please find the invoice attached.\n")
    _receive(mailbox, subject="Lunch?", text="Shall we meet at noon?\n", sender="Bob <bob@example.net>")
    email_ingest(mailbox=outsider.mailboxes.get(), raw=make_message(subject="Outsider invoice 4711"))
    search = op("qmailing_search_emails")
    page = call(client, search, token=token, args={"query": "invoice"}).json()
    assert [e["id"] for e in page["items"]] == [str(wanted.id)] and page["next_cursor"] is None
    assert page["items"][0]["subject"] == "Quarterly invoice 4711" and "text" not in page["items"][0]
    by_sender = call(client, search, token=token, args={"from": "bob", "mailbox_id": mailbox.id, "unread": "true"}).json()
    assert [e["subject"] for e in by_sender["items"]] == ["Lunch?"]
    none = call(client, search, token=token, args={"query": "invoice", "date_to": "2000-01-01"}).json()
    assert none["items"] == []
    bad = call(client, search, token=token, args={"date_from": "yesterday"})
    assert bad.status_code == 400 and "date_from" in bad.json()["errors"]
    extra = call(client, search, token=token, args={"query": "x", "sort": "asc"})
    assert extra.status_code == 400 and "sort" in extra.json()["errors"]


def test_threads_list_and_read_in_order_with_capped_text(client, owner, mailbox, token, op):
    first = _receive(mailbox, subject="Plans", text="Shall we go hiking?\n", message_id="plans-1@example.com")
    second = _receive(mailbox, subject="Re: Plans", text="Yes! " + "x" * 5000 + "\n", message_id="plans-2@example.com",
                      in_reply_to="plans-1@example.com", references=["plans-1@example.com"])
    assert first.thread_id == second.thread_id
    _receive(mailbox, subject="Other", text="Unrelated.\n")
    threads = call(client, op("qmailing_list_threads"), token=token, args={"mailbox_id": mailbox.id, "limit": 10}).json()
    assert len(threads["items"]) == 2 and threads["items"][1]["id"] == str(first.thread_id)
    assert threads["items"][1]["message_count"] == 2
    body = call(client, op("qmailing_get_thread"), token=token, args={"thread_id": first.thread_id}).json()
    assert [m["id"] for m in body["messages"]] == [str(first.id), str(second.id)] and body["omitted_count"] == 0
    assert body["messages"][0]["text"].startswith("Shall we go hiking?") and body["messages"][0]["truncated"] is False
    assert len(body["messages"][1]["text"]) == 2000 and body["messages"][1]["truncated"] is True
    newest = call(client, op("qmailing_get_thread"), token=token, args={"thread_id": first.thread_id, "max_messages": 1}).json()
    assert [m["id"] for m in newest["messages"]] == [str(second.id)] and newest["omitted_count"] == 1


def test_update_email_flags_trash_and_restore_idempotently(client, owner, mailbox, token, op):
    email = _receive(mailbox, subject="Triage me")
    update = op("qmailing_update_email")
    for _ in range(2):  # the same call twice changes nothing more
        body = call(client, update, token=token, args={"email_id": email.id, "is_read": True, "is_starred": True}).json()
        assert body["is_read"] is True and body["is_starred"] is True and body["folder"] == "INBOX"
    mailbox.refresh_from_db()
    assert mailbox.unread_count == 0
    trashed = call(client, update, token=token, args={"email_id": email.id, "folder": "TRASH"}).json()
    assert trashed["folder"] == "TRASH" and trashed["purge_after"]
    again = call(client, update, token=token, args={"email_id": email.id, "folder": "TRASH"}).json()
    assert again["purge_after"] == trashed["purge_after"]
    restored = call(client, update, token=token, args={"email_id": email.id, "restore": True}).json()
    assert restored["folder"] == "INBOX" and restored["purge_after"] is None
    both = call(client, update, token=token, args={"email_id": email.id, "restore": True, "folder": "ARCHIVE"})
    assert both.status_code == 400 and "restore" in both.json()["errors"]
    bad = call(client, update, token=token, args={"email_id": email.id, "folder": "Junk"})
    assert bad.status_code == 400 and "folder" in bad.json()["errors"]
    read_only = token_for(owner, scopes="email:read")
    refused = call(client, update, token=read_only, args={"email_id": email.id, "is_read": False})
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def test_send_email_to_a_hosted_mailbox_with_an_attachment(client, owner, outsider, mailbox, token, op):
    recipient = outsider.mailboxes.get()
    response = call(client, op("qmailing_send_email"), token=token, args={
        "mailbox_id": mailbox.id, "to": [recipient.address], "subject": "Report", "text": "Attached.",
        "attachments": [{"filename": "r.txt", "content_type": "text/plain",
                         "content_base64": base64.b64encode(b"numbers").decode()}]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["folder"] == "SENT" and body["direction"] == "outbound" and body["has_attachments"] is True
    assert body["delivery_status"] == "delivered" and body["to"][0]["address"] == recipient.address
    received = Email.objects.get(mailbox=recipient, direction=Email.Direction.INBOUND)
    assert received.subject == "Report" and received.attachments.get().filename == "r.txt"
    bad = call(client, op("qmailing_send_email"), token=token, args={
        "mailbox_id": mailbox.id, "to": [recipient.address],
        "attachments": [{"filename": "r.txt", "content_base64": "not base64!"}]})
    assert bad.status_code == 400 and "attachments.0.content_base64" in bad.json()["errors"]
    no_send = token_for(owner, scopes="email:read email:write")
    refused = call(client, op("qmailing_send_email"), token=no_send, args={"mailbox_id": mailbox.id, "to": [recipient.address]})
    assert (refused.status_code, refused.json()["requiredScopes"]) == (403, ["email:send"])


def test_send_email_with_a_header_injection_subject_is_safe(client, owner, outsider, mailbox, token, op):
    recipient = outsider.mailboxes.get()
    response = call(client, op("qmailing_send_email"), token=token, args={
        "mailbox_id": mailbox.id, "to": [recipient.address], "subject": "Hi\r\nBcc: victim@example.com\r\nX-Evil: 1",
        "text": "Hello."})
    assert response.status_code == 201, response.content  # sent, with the line breaks folded into one subject line
    assert response.json()["to"] == [{"address": recipient.address, "name": ""}]
    sent = Email.objects.get(pk=response.json()["id"])
    with sent.raw.open("rb") as handle:
        headers = message_from_bytes(handle.read())
    assert headers["Bcc"] is None and headers["X-Evil"] is None and "\n" not in str(headers["Subject"])
    assert not Email.objects.filter(to__icontains="victim@example.com").exists()


def test_newsletter_fits_the_default_cap_with_its_links(client, owner, mailbox, token, op):
    raw = newsletter_message()
    assert len(raw) > 140_000
    email = email_ingest(mailbox=mailbox, raw=raw)
    body = call(client, op("qmailing_get_email"), token=token, args={"email_id": email.id, "include_links": "true"}).json()
    assert 0 < len(body["text"]) <= DEFAULT_TEXT_CHARS and body["truncated"] is False
    assert len(body["links"]) > 50 and all(url.startswith("http") for url in body["links"].values())
    refs = set(re.findall(r"\[(\d+)\]", body["text"]))
    assert refs and refs <= set(body["links"])  # every reference in the text resolves to a kept link


def _large_attachment_email(mailbox, size=6 * 1024 * 1024, name="big.bin"):
    data = bytes(range(256)) * (size // 256)
    return email_ingest(mailbox=mailbox, raw=make_message(subject="Big file",
                                                          attachments=[(name, "application/octet-stream", data)])), data


def test_get_attachment_inline_with_extracted_text(client, owner, mailbox, token, op):
    email = _receive(mailbox, attachments=[("notes.txt", "text/plain", b"hello there")])
    body = call(client, op("qmailing_get_attachment"), token=token, args={"email_id": email.id, "index": 0}).json()
    assert base64.b64decode(body["content_base64"]) == b"hello there"
    assert (body["filename"], body["content_type"], body["size"]) == ("notes.txt", "text/plain", 11)
    missing = call(client, op("qmailing_get_attachment"), token=token, args={"email_id": email.id, "index": 3})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_large_attachment_gives_the_cap_error_with_a_signed_url_that_expires(client, owner, outsider, mailbox, token, op, settings):
    email, data = _large_attachment_email(mailbox)
    response = call(client, op("qmailing_get_attachment"), token=token, args={"email_id": email.id, "index": 0})
    assert response.status_code == 413 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "attachment_too_large" and "5 MB" in problem["detail"]
    assert problem["limit"] == INLINE_ATTACHMENT_BYTES and problem["type"].endswith("#attachment_too_large")
    url = problem["downloadUrl"]
    assert url.startswith(settings.QMAILING_BASE_URL)
    path = url[len(settings.QMAILING_BASE_URL):]
    client.logout()  # the URL is the capability: no session, no token
    download = client.get(path)
    assert download.status_code == 200 and b"".join(download.streaming_content) == data
    assert download["Content-Type"] == "application/octet-stream" and "big.bin" in download["Content-Disposition"]

    # Expired: the same URL, later than the TTL.
    later = time.time() + DOWNLOAD_TTL_SECONDS + 5
    with mock.patch("django.core.signing.time.time", return_value=later):
        expired = client.get(path)
    assert expired.status_code == 404 and expired.json()["code"] == "download_link_expired"

    # Tampered: another attachment's id cannot be swapped in, nor the signature altered.
    other_email, _ = _large_attachment_email(mailbox, size=1024, name="other.bin")
    other = other_email.attachments.get()
    token_part = path.rsplit("/", 1)[1]
    forged = client.get(path.replace(token_part, token_part[:-2] + ("AA" if not token_part.endswith("AA") else "BB")))
    assert forged.status_code == 404 and forged.json()["code"] == "not_found"
    rest = token_part.split(":", 1)[1]
    swapped_payload = download_token(attachment=other, account_id=owner.pk).split(":", 1)[0]
    assert client.get(path.replace(token_part, f"{swapped_payload}:{rest}")).status_code == 404
    # A genuine signature naming the attachment with another account: the attachment is not that account's.
    foreign = download_token(attachment=email.attachments.get(), account_id=outsider.pk)
    assert client.get(path.replace(token_part, foreign)).status_code == 404


def test_send_email_takes_attachments_above_the_default_body_size(client, owner, outsider, mailbox, token, op, settings):
    recipient = outsider.mailboxes.get()
    data = b"x" * 3_000_000  # base64 in JSON: above Django's default 2.5 MB request body
    response = call(client, op("qmailing_send_email"), token=token, args={
        "mailbox_id": mailbox.id, "to": [recipient.address], "subject": "Big", "text": "See attached.",
        "attachments": [{"filename": "big.bin", "content_base64": base64.b64encode(data).decode()}]})
    assert response.status_code == 201, response.content[:500]
    settings.QMAILING_API_MAX_BODY_BYTES = 1000
    too_big = call(client, op("qmailing_send_email"), token=token, args={
        "mailbox_id": mailbox.id, "to": [recipient.address], "text": "y" * 2000})
    assert too_big.status_code == 413 and too_big["Content-Type"] == "application/problem+json"
    assert too_big.json()["code"] == "too_large"


def test_only_the_api_takes_large_bodies(client, owner, settings):
    """Every other view keeps Django's 2.5 MB bound: a sign-in POST cannot make the server hold 38 MB."""
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2.5 * 1024 * 1024
    assert settings.QMAILING_API_MAX_BODY_BYTES > 30 * 1024 * 1024
    response = client.post("/accounts/login/", data="login=a%40b.example&password=" + "x" * 3_000_000,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
