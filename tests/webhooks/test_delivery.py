"""Webhook delivery against real receivers on loopback: signed, retried on schedule, never lost, SSRF-checked each time."""

import json
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.models import Plan
from accounts.services import account_set_plan
from mailboxes.inbound.ingest import email_ingest
from tests.mailboxes.inbound_helpers import make_message
from tests.webhooks.receiver import Receiver
from webhooks import delivery as webhook_delivery
from webhooks.delivery import (MAX_ATTEMPTS, MAX_PAYLOAD_BYTES, RETRY_DELAYS, delivery_attempt, deliveries_due,
                               deliveries_redeliver, endpoint_enable, signature_header, webhook_body)
from events.models import Event, EventType
from events.services import event_publish
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_encrypt
from webhooks.services import webhook_register, webhook_revoke, webhook_rotate_secret


@pytest.fixture
def pro(owner):
    account_set_plan(account=owner, plan_code=Plan.PRO)
    return owner


@pytest.fixture
def receiver(settings):
    settings.QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def hook(pro, receiver):
    endpoint, secret = webhook_register(account=pro, url=receiver.url, event_types=["email.received"])
    return endpoint, secret


def _receive(account, subject="Hello"):
    return email_ingest(mailbox=account.mailboxes.get(), raw=make_message(subject=subject))


def _only_delivery(endpoint):
    return WebhookDelivery.objects.get(endpoint=endpoint)


def test_the_standard_webhooks_test_vector(pro):
    endpoint = WebhookEndpoint(secret_encrypted=secret_encrypt("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    moment = datetime.fromtimestamp(1614265330, tz=dt_timezone.utc)
    assert signature_header(endpoint, message_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=moment,
                            body='{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_mail_reaches_the_endpoint_signed_and_verifiable(pro, hook, receiver):
    endpoint, secret = hook
    email = _receive(pro, subject="Order 17")
    delivery = _only_delivery(endpoint)
    outcome = delivery_attempt(delivery.pk)
    assert outcome.succeeded
    [body] = receiver.verified(secret)  # the standardwebhooks package accepts it
    assert body["type"] == "email.received" and body["version"] == 1
    assert body["data"]["email_id"] == str(email.id) and body["data"]["subject"] == "Order 17"
    [request] = receiver.requests
    assert request["path"] == "/hooks/qmailing?source=test"
    assert request["headers"]["webhook-id"] == delivery.message_id and request["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == "succeeded" and endpoint.last_success_at is not None
    attempt = delivery.attempt_log.get()
    assert (attempt.status_code, attempt.address, attempt.response_snippet) == (204, "127.0.0.1", "")


def test_only_the_event_types_asked_for_make_deliveries(pro, hook):
    endpoint, _ = hook
    event_publish(account=pro, type=EventType.DOMAIN_VERIFIED, payload={"domain_id": "x"})
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()


def test_failures_retry_on_the_schedule_with_jitter_then_give_up(pro, hook, receiver):
    endpoint, _ = hook
    receiver.status = 500
    _receive(pro)
    delivery = _only_delivery(endpoint)
    now = timezone.now()
    for number in range(1, MAX_ATTEMPTS + 1):
        outcome = delivery_attempt(delivery.pk, now=now)
        assert outcome.attempted and not outcome.succeeded
        delivery.refresh_from_db()
        assert delivery.attempts == number
        if number < MAX_ATTEMPTS:
            expected = RETRY_DELAYS[number - 1]
            assert expected * 0.9 - 1 <= outcome.retry_in <= expected * 1.1 + 1
            # Not before it is due, exactly when it is.
            assert not delivery_attempt(delivery.pk, now=now + timedelta(seconds=outcome.retry_in - 2)).attempted
            now += timedelta(seconds=outcome.retry_in)
    assert delivery.status == "failed" and delivery.last_status_code == 500
    assert delivery.attempt_log.count() == MAX_ATTEMPTS == 10
    total = sum(RETRY_DELAYS)
    assert 2.5 * 86400 < total < 4 * 86400  # about three days


def test_retry_after_is_honoured_on_429(pro, hook, receiver):
    endpoint, _ = hook
    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    _receive(pro)
    outcome = delivery_attempt(_only_delivery(endpoint).pk)
    assert outcome.retry_in >= 120


def test_410_disables_the_endpoint_at_once_mails_the_owner_and_publishes_webhook_disabled(pro, hook, receiver,
                                                                                           django_capture_on_commit_callbacks):
    endpoint, _ = hook
    receiver.status = 410
    _receive(pro)
    with django_capture_on_commit_callbacks(execute=True):
        delivery_attempt(_only_delivery(endpoint).pk)
    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and "410" in endpoint.disabled_reason
    assert Event.objects.filter(account=pro, type=EventType.WEBHOOK_DISABLED, payload__webhook_id=str(endpoint.pk)).exists()
    assert any(endpoint.url in message.body for message in mail.outbox)
    _receive(pro, subject="After")
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1  # nothing new for a disabled endpoint


def test_a_redirect_is_a_failure_and_is_not_followed(pro, hook, receiver):
    endpoint, _ = hook
    elsewhere = Receiver().start()
    try:
        receiver.status, receiver.headers = 307, {"Location": elsewhere.url}
        _receive(pro)
        outcome = delivery_attempt(_only_delivery(endpoint).pk)
        assert not outcome.succeeded and outcome.retry_in is not None
        assert elsewhere.requests == []
        assert "redirects are not followed" in _only_delivery(endpoint).last_error
    finally:
        elsewhere.stop()


def test_a_receiver_slower_than_the_timeout_fails_the_attempt(pro, hook, receiver, monkeypatch):
    endpoint, _ = hook
    monkeypatch.setattr(webhook_delivery, "TIMEOUT_SECONDS", 1)
    receiver.delay = 2.5
    _receive(pro)
    outcome = delivery_attempt(_only_delivery(endpoint).pk)
    assert not outcome.succeeded
    assert "within 1 s" in _only_delivery(endpoint).last_error or "timed out" in _only_delivery(endpoint).last_error


def test_a_receiver_down_then_up_gets_every_event_once_per_webhook_id(pro, settings):
    settings.QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    down = Receiver()  # not started: connections are refused
    endpoint, secret = webhook_register(account=pro, url=down.url, event_types=["*"])
    for number in range(5):
        _receive(pro, subject=f"Message {number}")
    now = timezone.now()
    for delivery_id in deliveries_due(now=now):
        assert not delivery_attempt(delivery_id, now=now).succeeded
    up = Receiver(port=down.port).start()
    try:
        later = now + timedelta(hours=1)
        while due := deliveries_due(now=later):
            for delivery_id in due:
                delivery_attempt(delivery_id, now=later)
        bodies = up.verified(secret)
        ids = [request["headers"]["webhook-id"] for request in up.requests]
        assert len(ids) == len(set(ids)) == WebhookDelivery.objects.filter(endpoint=endpoint).count() >= 5
        assert sorted(b["data"]["subject"] for b in bodies if b["type"] == "email.received") == [
            f"Message {n}" for n in range(5)]
    finally:
        up.stop()


def test_dns_rebinding_after_registration_is_refused_at_send_time(pro, dns_server):
    dns_server.add("hooks.example.com", "A", "93.184.215.14")
    endpoint, _ = webhook_register(account=pro, url="https://hooks.example.com/in", event_types=["*"])
    dns_server.clear("hooks.example.com")
    dns_server.add("hooks.example.com", "A", "127.0.0.1")  # the name now points inside
    _receive(pro)
    sent = []
    outcome = delivery_attempt(_only_delivery(endpoint).pk, send=lambda *a, **k: sent.append(a))
    assert outcome.attempted and not outcome.succeeded and sent == []
    assert "not a public internet address" in _only_delivery(endpoint).last_error


def test_an_endpoint_failing_for_five_days_is_disabled(pro, hook, receiver):
    endpoint, _ = hook
    receiver.status = 503
    _receive(pro)
    delivery = _only_delivery(endpoint)
    start = timezone.now()
    delivery_attempt(delivery.pk, now=start)
    _receive(pro, subject="later")
    second = WebhookDelivery.objects.filter(endpoint=endpoint).exclude(pk=delivery.pk).get()
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=start)
    delivery_attempt(second.pk, now=start + timedelta(days=5, minutes=1))
    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and "5 days" in endpoint.disabled_reason
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status="pending").count() == 0


def test_rotation_signs_with_both_secrets_during_the_overlap(pro, hook, receiver):
    endpoint, old_secret = hook
    endpoint, new_secret = webhook_rotate_secret(endpoint=endpoint, overlap_hours=24)
    _receive(pro)
    delivery_attempt(_only_delivery(endpoint).pk)
    assert len(receiver.verified(old_secret)) == len(receiver.verified(new_secret)) == 1
    assert len(receiver.requests[0]["headers"]["webhook-signature"].split(" ")) == 2


def test_manual_redelivery_sends_the_same_webhook_id_again(pro, hook, receiver):
    endpoint, secret = hook
    _receive(pro)
    delivery = _only_delivery(endpoint)
    delivery_attempt(delivery.pk)
    assert deliveries_redeliver(endpoint=endpoint, since=timezone.now() - timedelta(hours=1)) == 1
    delivery_attempt(delivery.pk)
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [delivery.message_id] * 2
    assert len(receiver.verified(secret)) == 2


def test_revoking_cancels_what_is_pending_and_enable_brings_a_disabled_endpoint_back(pro, hook, receiver):
    endpoint, _ = hook
    _receive(pro)
    webhook_revoke(endpoint=endpoint)
    assert _only_delivery(endpoint).status == "cancelled"
    other, _ = webhook_register(account=pro, url=receiver.url, event_types=["*"])
    WebhookEndpoint.objects.filter(pk=other.pk).update(status="disabled", disabled_reason="x", consecutive_failures=9)
    enabled = endpoint_enable(endpoint=other)
    assert (enabled.status, enabled.consecutive_failures, enabled.disabled_reason) == ("active", 0, "")


@pytest.mark.parametrize("event_type", [t for t in EventType.values])
def test_every_payload_is_versioned_complete_and_small(pro, event_type):
    huge = {"email_id": "0" * 36, "subject": "x" * 100_000, "to": [], "thread_id": None}
    event = event_publish(account=pro, type=event_type, payload=huge)
    body = json.loads(webhook_body(event))
    assert len(webhook_body(event).encode()) <= MAX_PAYLOAD_BYTES
    assert set(body) == {"id", "type", "version", "created_at", "cursor", "mailbox_id", "data"}
    assert body["mailbox_id"] is None and body["data"]["email_id"] == "0" * 36


def test_a_real_email_received_payload_keeps_empty_lists_and_nulls(pro, hook, receiver):
    endpoint, secret = hook
    _receive(pro)
    delivery_attempt(_only_delivery(endpoint).pk)
    [body] = receiver.verified(secret)
    assert len(json.dumps(body)) < MAX_PAYLOAD_BYTES
    assert set(body["data"]) == {"email_id", "mailbox_id", "thread_id", "from", "subject", "snippet", "folder",
                                 "has_attachments"}
    assert body["mailbox_id"] == str(pro.mailboxes.get().id)


def test_the_sweep_finds_what_a_killed_worker_left_in_flight(pro, hook, receiver):
    """A worker that died mid-attempt leaves the delivery claimed; once the lease runs out it is due again."""
    endpoint, secret = hook
    _receive(pro)
    delivery = _only_delivery(endpoint)
    now = timezone.now()
    claimed = webhook_delivery._claim(delivery.pk, now)  # the attempt began, then the worker died
    assert claimed is not None and deliveries_due(now=now) == []
    later = now + timedelta(seconds=webhook_delivery.LEASE_SECONDS + 1)
    assert deliveries_due(now=later) == [str(delivery.pk)]
    assert delivery_attempt(delivery.pk, now=later).succeeded
    assert len(receiver.verified(secret)) == 1


def test_signature_uses_a_fresh_timestamp_per_attempt(pro, hook, receiver):
    endpoint, secret = hook
    receiver.status = 500
    _receive(pro)
    delivery = _only_delivery(endpoint)
    delivery_attempt(delivery.pk)
    stamp = int(receiver.requests[0]["headers"]["webhook-timestamp"])
    assert abs(stamp - timezone.now().timestamp()) < 30
    Webhook(secret).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])
