"""Mailgun delivery tracking through HTTP: anymail's real view, signature check and signal, then our status."""

import hashlib
import hmac
import json
import time

import pytest

from mailboxes.outbound.delivery import email_set_delivery
from mailboxes.models import Email
from mailboxes.outbound.send import email_send
from events.models import Event

SIGNING_KEY = "key-tracking-signing-0123456789"
URL = "/anymail/mailgun/tracking/"
ESP_MESSAGE_ID = "20261121101500.1.ABCDEF@mg.brand.example"


@pytest.fixture(autouse=True)
def mailgun_settings(settings):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


@pytest.fixture
def sent(owner, sender):
    """An email handed to Mailgun: Mailgun's message id is stored as the ESP id."""
    email = email_send(account=owner, mailbox=sender, to=["bob@client.example"], subject="Quote", text="Attached.")
    return email_set_delivery(email_id=email.id, status=Email.Delivery.SENT, esp_message_id=f"<{ESP_MESSAGE_ID}>")


def _payload(event, *, key=SIGNING_KEY, token="b" * 50, **event_data):
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    data = {"event": event, "timestamp": time.time(), "id": "evt-" + event, "recipient": "bob@client.example",
            "message": {"headers": {"message-id": ESP_MESSAGE_ID, "to": "bob@client.example"}}, **event_data}
    return json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                       "event-data": data})


def _post(client, body):
    return client.post(URL, body, content_type="application/json")


def _status(email):
    email.refresh_from_db()
    return email.delivery_status


def _published(owner):
    return list(Event.objects.filter(account=owner, type__in=["email.delivered", "email.bounced", "email.failed"])
                .order_by("cursor").values_list("type", flat=True))


def test_signed_delivered_event_marks_the_email_delivered_and_publishes(client, owner, sent):
    response = _post(client, _payload("delivered", **{"delivery-status": {"code": 250, "message": "OK"}}))
    assert response.status_code == 200
    assert _status(sent) == Email.Delivery.DELIVERED
    assert _published(owner) == ["email.delivered"]
    assert "Mailgun: delivered bob@client.example" in Email.objects.get(pk=sent.pk).delivery_detail


def test_permanent_failure_is_a_bounce_after_delivered_too(client, owner, sent):
    assert _post(client, _payload("delivered")).status_code == 200
    bounce = _payload("failed", severity="permanent", reason="bounce",
                      **{"delivery-status": {"code": 550, "message": "5.1.1 mailbox unknown"}})
    assert _post(client, bounce).status_code == 200
    assert _status(sent) == Email.Delivery.BOUNCED
    assert _published(owner) == ["email.delivered", "email.bounced"]
    # A late or repeated event never moves the status back.
    assert _post(client, _payload("delivered", token="c" * 50)).status_code == 200
    assert _status(sent) == Email.Delivery.BOUNCED
    assert _published(owner) == ["email.delivered", "email.bounced"]


def test_temporary_failure_changes_nothing(client, owner, sent):
    deferred = _payload("failed", severity="temporary", reason="generic")
    assert _post(client, deferred).status_code == 200
    assert _status(sent) == Email.Delivery.SENT
    assert _published(owner) == []


def test_rejected_by_mailgun_is_failed(client, owner, sent):
    rejected = _payload("rejected", reject={"reason": "Sandbox subdomains are for test purposes only"})
    assert _post(client, rejected).status_code == 200
    assert _status(sent) == Email.Delivery.FAILED
    assert _published(owner) == ["email.failed"]


@pytest.mark.parametrize("tamper", ["wrong key", "edited after signing", "no signature"])
def test_badly_signed_tracking_request_is_refused_and_changes_nothing(client, owner, sent, tamper):
    if tamper == "wrong key":
        body = _payload("delivered", key="not-the-signing-key")
    elif tamper == "edited after signing":
        signed = json.loads(_payload("delivered"))
        signed["signature"]["timestamp"] = str(int(signed["signature"]["timestamp"]) + 1)
        body = json.dumps(signed)
    else:
        signed = json.loads(_payload("delivered"))
        del signed["signature"]
        body = json.dumps(signed)
    assert _post(client, body).status_code == 400
    assert _status(sent) == Email.Delivery.SENT
    assert _published(owner) == []
