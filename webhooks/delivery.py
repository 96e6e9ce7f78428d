"""Webhook delivery: one row per (event, endpoint), attempted by Celery until a 2xx, recorded attempt by attempt.

- `deliveries_create` runs inside the transaction that writes the event (events.signals.event_written),
  so a delivery exists exactly when its event does; its task is enqueued on commit, and the beat sweep
  (`deliveries_due`) enqueues whatever is due and not in flight, so a lost task or a killed worker loses
  nothing.
- `delivery_attempt` claims the delivery with a lease (one UPDATE, so two workers never send the same
  attempt), checks the URL again (webhooks.ssrf: resolve once, public addresses only), POSTs to the
  pinned address with the original Host and TLS server name, and records the attempt before and after.
  Only a 2xx within 15 s is success; redirects are not followed. Failures retry on RETRY_DELAYS with
  jitter; 429 and 5xx answers may push the next try later with Retry-After; 410 disables the endpoint
  at once; an endpoint failing for DISABLE_AFTER is disabled, its owner mailed and `webhook.disabled`
  published.
- Requests are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with
  the `standardwebhooks` library; during a secret rotation both secrets sign.
"""

import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from core.errors import AppError, Conflict
from events.models import EventType
from events.services import event_publish
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_decrypt
from webhooks.signals import deliveries_ready
from webhooks.ssrf import webhook_target

logger = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
MAX_PAYLOAD_BYTES = 20 * 1024
TIMEOUT_SECONDS = 15
LEASE_SECONDS = 60  # an attempt in flight is not picked again before this (longer than the timeout)
# After attempt n fails, the next comes this long after it (then the delivery fails): ≈ 3 days in all.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1  # ± 10 % of each delay
DISABLE_AFTER = timedelta(days=5)
MAX_RETRY_AFTER = 24 * 3600
SNIPPET_CHARS = 1000
USER_AGENT = "QMailing-Webhooks/1"


# --- the payload -------------------------------------------------------------------------------------------------

def webhook_body(event) -> str:
    """The JSON body of an event's webhook: versioned, complete (nulls kept), mail by reference only."""
    body = {"id": f"evt_{event.id.hex}", "type": event.type, "version": PAYLOAD_VERSION,
            "created_at": event.created_at.isoformat(), "cursor": event.cursor,
            "mailbox_id": str(event.mailbox_id) if event.mailbox_id else None, "data": event.payload}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:  # never expected: payloads carry ids and short fields
        body["data"] = {key: value for key, value in event.payload.items() if key.endswith("_id") or key == "id"}
        body["data"]["truncated"] = True
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text


def signature_header(endpoint, *, message_id, timestamp, body, now=None) -> str:
    """`v1,<sig>` with the endpoint's secret, and the previous one's while a rotation overlaps."""
    now = now or timezone.now()
    secrets = [secret_decrypt(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        secrets.append(secret_decrypt(endpoint.previous_secret_encrypted))
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets)


# --- creating deliveries -------------------------------------------------------------------------------------------

def deliveries_create(*, event, **kwargs):
    """event_written receiver, inside the event's transaction: a delivery per active endpoint that wants it; tasks
    enqueued on commit (deliveries_ready)."""
    endpoints = [endpoint for endpoint in WebhookEndpoint.objects.filter(account_id=event.account_id,
                                                                         status=WebhookEndpoint.Status.ACTIVE)
                 if endpoint.wants(event.type)]
    if not endpoints:
        return []
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=event.created_at) for endpoint in endpoints])
    deliveries_ready.send(sender=WebhookDelivery, ids=[str(delivery.id) for delivery in deliveries])
    return deliveries


def deliveries_due(*, now=None, limit=500) -> list:
    """Ids of pending deliveries that are due and not in flight (the beat sweep enqueues them)."""
    now = now or timezone.now()
    return [str(pk) for pk in WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING,
                                                              next_attempt_at__lte=now)
            .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]]


# --- one attempt -------------------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int | None
    snippet: str = ""
    error: str = ""
    retry_after: int | None = None
    address: str = ""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the name resolves to now; Host stays the URL's host."""

    def __init__(self, host, port, *, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the URL's host as server name (SNI) and for certificate checks."""

    def __init__(self, host, port, *, address, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _tls_context():
    return ssl.create_default_context()


def _retry_after(value, now):
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        return max(0, min(int((parsedate_to_datetime(value) - now).total_seconds()), MAX_RETRY_AFTER))
    except (TypeError, ValueError, OverflowError):
        return None


def post(target, *, body, headers, now=None) -> Response:
    """POST `body` to the first checked address of `target` (no redirects), reading at most a snippet back.

    The whole exchange has TIMEOUT_SECONDS: a watchdog shuts the socket at the deadline, so a receiver
    that answers byte by byte cannot hold a worker longer.
    """
    address = target.addresses[0]
    parts = urlsplit(target.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target.host, target.port, address=address, timeout=TIMEOUT_SECONDS,
                                            context=_tls_context())
    else:
        connection = _PinnedHTTPConnection(target.host, target.port, address=address, timeout=TIMEOUT_SECONDS)
    expired = threading.Event()

    def cut():
        expired.set()
        if connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(TIMEOUT_SECONDS, cut)
    watchdog.start()
    try:
        connection.request("POST", path, body=body.encode("utf-8"), headers=headers)
        response = connection.getresponse()
        raw = response.read(SNIPPET_CHARS * 4)
        if expired.is_set():
            raise TimeoutError("cut at the deadline")
        return Response(status=response.status, snippet=raw.decode("utf-8", "replace")[:SNIPPET_CHARS],
                        retry_after=_retry_after(response.getheader("Retry-After"), now or timezone.now()),
                        address=address)
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if expired.is_set():
            return Response(status=None, error=f"No complete answer within {TIMEOUT_SECONDS} s.", address=address)
        return Response(status=None, error=(f"{exc.__class__.__name__}: {exc}")[:500], address=address)
    finally:
        watchdog.cancel()
        connection.close()


def _claim(delivery_id, now):
    """Take the delivery for one attempt (a lease), or None if it is not due, not pending or taken."""
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING,
                                             next_attempt_at__lte=now).update(
        next_attempt_at=now + timedelta(seconds=LEASE_SECONDS), attempts=F("attempts") + 1)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint__account", "event").get(pk=delivery_id)


def next_delay(attempt_number, *, retry_after=None, rng=random):
    """Seconds until the next attempt after attempt `attempt_number` failed, or None when it was the last."""
    if attempt_number >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[attempt_number - 1]
    delay = delay * (1 + rng.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(1, int(round(delay)))


@dataclass
class Outcome:
    attempted: bool
    succeeded: bool = False
    retry_in: int | None = None  # seconds until the next attempt, when there is one


def delivery_attempt(delivery_id, *, now=None, send=post) -> Outcome:
    """Make one attempt of a due delivery and record it; what happens next (retry, give up, disable) follows.

    Two short transactions around the POST (claim + attempt row; then the outcome), never one across it.
    `now` fixes the clock (tests); the next attempt is scheduled from the attempt's start.
    """
    clock = now
    now = now or timezone.now()
    with transaction.atomic():
        delivery = _claim(delivery_id, now)
        if delivery is None:
            return Outcome(attempted=False)
        endpoint = delivery.endpoint
        if endpoint.status != WebhookEndpoint.Status.ACTIVE:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.CANCELLED,
                                                                  completed_at=now)
            return Outcome(attempted=False)
        attempt = WebhookAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)
    started = time.monotonic()
    try:
        target = webhook_target(endpoint.url)  # checked again at every attempt (DNS may have changed)
    except AppError as error:
        response = Response(status=None, error=error.detail[:500])
    else:
        body = webhook_body(delivery.event)
        timestamp = timezone.now()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "webhook-id": delivery.message_id, "webhook-timestamp": str(int(timestamp.timestamp())),
                   "webhook-signature": signature_header(endpoint, message_id=delivery.message_id,
                                                         timestamp=timestamp, body=body, now=now)}
        response = send(target, body=body, headers=headers, now=now)
    duration = int((time.monotonic() - started) * 1000)
    finished = clock + timedelta(milliseconds=duration) if clock else timezone.now()
    succeeded = response.status is not None and 200 <= response.status < 300 and duration <= TIMEOUT_SECONDS * 1000
    error = response.error or f"HTTP {response.status}" + (" (redirects are not followed)" if response.status
                                                          and 300 <= response.status < 400 else "")
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=attempt.pk).update(
            address=response.address, status_code=response.status, duration_ms=duration,
            response_snippet=response.snippet[:SNIPPET_CHARS], error="" if succeeded else error[:500])
        if succeeded:
            _finish(delivery, WebhookDelivery.Status.SUCCEEDED, now=finished, code=response.status)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_success_at=finished, consecutive_failures=0,
                                                                  failing_since=None)
            return Outcome(attempted=True, succeeded=True)
        if response.status == 410:
            _finish(delivery, WebhookDelivery.Status.FAILED, now=finished, code=410,
                    error="The receiver answered 410 Gone.")
            endpoint_disable(endpoint=endpoint, now=finished,
                             reason="The receiver answered 410 Gone: it asked for no more deliveries.")
            return Outcome(attempted=True)
        honoured = response.retry_after if response.status == 429 or (response.status or 0) >= 500 else None
        delay = next_delay(delivery.attempts, retry_after=honoured)
        if delay is None:
            _finish(delivery, WebhookDelivery.Status.FAILED, now=finished, code=response.status, error=error)
        else:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                next_attempt_at=now + timedelta(seconds=delay), last_status_code=response.status,
                last_error=error[:500])
        _record_failure(endpoint, now=finished)
    return Outcome(attempted=True, retry_in=delay)


def _finish(delivery, state, *, now, code=None, error=""):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=state, completed_at=now, last_status_code=code,
                                                          last_error=error[:500])


def _record_failure(endpoint, *, now):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    endpoint.refresh_from_db(fields=["failing_since", "status"])
    if endpoint.status == WebhookEndpoint.Status.ACTIVE and endpoint.failing_since and \
            now - endpoint.failing_since >= DISABLE_AFTER:
        endpoint_disable(endpoint=endpoint, now=now,
                         reason=f"Every delivery failed for {DISABLE_AFTER.days} days.")


# --- endpoint state ----------------------------------------------------------------------------------------------

def endpoint_disable(*, endpoint, reason, now=None):
    """Stop sending to an endpoint: pending deliveries are cancelled, the owner is mailed, webhook.disabled is published."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, status=WebhookEndpoint.Status.ACTIVE).update(
            status=WebhookEndpoint.Status.DISABLED, disabled_reason=reason[:240])
        if not changed:
            return
        WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.CANCELLED, completed_at=now)
        event_publish(account=endpoint.account, type=EventType.WEBHOOK_DISABLED, payload={
            "webhook_id": str(endpoint.pk), "url": endpoint.url, "reason": reason,
            "disabled_at": now.isoformat()})
        recipients = [user.email for user in endpoint.account.users.filter(is_active=True) if user.email]
        transaction.on_commit(lambda: _mail_owner(recipients, endpoint.url, reason))


def _mail_owner(recipients, url, reason):
    if not recipients:
        return
    try:
        send_mail(subject="QMailing stopped sending to one of your webhooks",
                  message=(f"QMailing disabled the webhook endpoint\n\n  {url}\n\n{reason}\n\nEvents are no longer sent "
                           f"to it. Fix the receiver, then enable it again and redeliver what it missed from the "
                           f"dashboard ({settings.QMAILING_BASE_URL}/)."),
                  from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients, fail_silently=False)
    except Exception:  # the endpoint is disabled either way; the event says so too
        logger.exception("Could not mail the owner about the disabled webhook %s", url)


def endpoint_enable(*, endpoint):
    """Send to a disabled endpoint again (its failures forgotten); what it missed can then be redelivered."""
    updated = WebhookEndpoint.objects.filter(pk=endpoint.pk, status=WebhookEndpoint.Status.DISABLED).update(
        status=WebhookEndpoint.Status.ACTIVE, disabled_reason="", consecutive_failures=0, failing_since=None)
    if not updated and WebhookEndpoint.objects.get(pk=endpoint.pk).status == WebhookEndpoint.Status.REVOKED:
        raise Conflict("This endpoint is revoked; register the URL again.", code="webhook_revoked")
    return WebhookEndpoint.objects.get(pk=endpoint.pk)


def delivery_redeliver(*, delivery):
    """Send one delivery again, as a new series of attempts with the same webhook-id."""
    return deliveries_redeliver(endpoint=delivery.endpoint, ids=[delivery.pk])


def deliveries_redeliver(*, endpoint, ids=None, since=None):
    """Send again the endpoint's deliveries with these ids, or every one created since `since`; returns how many."""
    endpoint.refresh_from_db(fields=["status"])
    if endpoint.status != WebhookEndpoint.Status.ACTIVE:
        raise Conflict("Enable the endpoint before redelivering to it.", code="webhook_not_active")
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).exclude(status=WebhookDelivery.Status.PENDING)
    if ids is not None:
        deliveries = deliveries.filter(pk__in=ids)
    if since is not None:
        deliveries = deliveries.filter(created_at__gte=since)
    with transaction.atomic():
        chosen = [str(pk) for pk in deliveries.values_list("pk", flat=True)]
        WebhookDelivery.objects.filter(pk__in=chosen).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), completed_at=None)
        deliveries_ready.send(sender=WebhookDelivery, ids=chosen)
    return len(chosen)
