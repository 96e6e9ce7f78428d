"""Mailgun inbound (route forward to /anymail/mailgun/inbound_mime/) through anymail's real view and signal."""

import base64
import hashlib
import hmac
import time

import pytest

from mailboxes.models import Email
from tests.mailboxes.inbound_helpers import make_message

SIGNING_KEY = "key-test-signing-0123456789"
URL = "/anymail/mailgun/inbound_mime/"


@pytest.fixture(autouse=True)
def mailgun_settings(settings):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY, "WEBHOOK_SECRET": "mailgun:s3cret-pass"}


def signed_post(*, raw, recipient, key=SIGNING_KEY, token="a" * 50):
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"body-mime": raw.decode("utf-8"), "recipient": recipient, "sender": "alice@example.com",
            "timestamp": timestamp, "token": token, "signature": signature}


def basic_auth(credentials="mailgun:s3cret-pass"):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_signed_mailgun_inbound_is_stored_with_its_raw_mime(client, mailbox):
    raw = make_message(subject="Via Mailgun", to=mailbox.address)
    response = client.post(URL, signed_post(raw=raw, recipient=mailbox.address), **basic_auth())
    assert response.status_code == 200
    email = Email.objects.get(mailbox=mailbox)
    assert email.subject == "Via Mailgun"
    with email.raw.open("rb") as handle:
        stored = handle.read()
    assert stored.startswith(b"Authentication-Results: mx.qmailing.localhost;") and stored.endswith(raw)
    assert email.authentication["verdict"] == "none"  # checked (example.com is unknown to the test DNS)


def test_badly_signed_mailgun_inbound_is_refused(client, mailbox):
    post = signed_post(raw=make_message(to=mailbox.address), recipient=mailbox.address, key="not-the-key")
    response = client.post(URL, post, **basic_auth())
    assert response.status_code == 400
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_mailgun_inbound_without_the_basic_auth_secret_is_refused(client, mailbox):
    post = signed_post(raw=make_message(to=mailbox.address), recipient=mailbox.address)
    assert client.post(URL, post).status_code == 400
    assert client.post(URL, post, **basic_auth("mailgun:wrong")).status_code == 400
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_mail_for_unhosted_recipients_is_acknowledged_and_not_stored(client, mailbox):
    post = signed_post(raw=make_message(to="someone@elsewhere.example"), recipient="someone@elsewhere.example")
    assert client.post(URL, post, **basic_auth()).status_code == 200
    assert not Email.objects.exists()


def test_full_storage_is_acknowledged_so_mailgun_does_not_retry(client, mailbox):
    plan = mailbox.account.plan
    plan.storage_bytes = 100  # plans are admin-editable rows; a tiny plan keeps the test fast
    plan.save(update_fields=["storage_bytes"])
    post = signed_post(raw=make_message(to=mailbox.address), recipient=mailbox.address)
    assert client.post(URL, post, **basic_auth()).status_code == 200
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_mime_structure_beyond_the_caps_is_refused_with_406_so_mailgun_does_not_retry(client, mailbox):
    from mailboxes.inbound.parsing import MAX_PARTS
    from tests.mailboxes.inbound_helpers import many_parts_message

    raw = many_parts_message(MAX_PARTS + 1).replace(b"owner@example.org", mailbox.address.encode())
    response = client.post(URL, signed_post(raw=raw, recipient=mailbox.address), **basic_auth())
    assert response.status_code == 406 and b"5.6.0" in response.content
    assert not Email.objects.filter(mailbox=mailbox).exists()
