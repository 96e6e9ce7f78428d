"""Webhook endpoints: registering, revoking and rotating secrets (webhooks.delivery sends the events)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from core.errors import Conflict, Invalid
from webhooks.models import WEBHOOK_EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_encrypt, secret_new
from webhooks.ssrf import webhook_target

MAX_DESCRIPTION = 240


def webhook_register(*, account, url, event_types, description="") -> tuple:
    """Register an endpoint for `event_types` (catalogue names, or ["*"]); returns (endpoint, secret).

    The URL must pass webhook_target (https, public addresses). The secret is returned here only; the
    database keeps its ciphertext.
    """
    types = list(dict.fromkeys(str(t) for t in (event_types or ())))
    if not types:
        raise Invalid("Choose at least one event type, or \"*\" for all.", field="event_types")
    unknown = [t for t in types if t != "*" and t not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise Invalid(f"Unknown event types: {', '.join(unknown)}. Choose from {', '.join(WEBHOOK_EVENT_TYPES)} "
                      "or \"*\".", field="event_types")
    description = " ".join(str(description or "").split())
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"The description can be at most {MAX_DESCRIPTION} characters.", field="description")
    target = webhook_target(url)
    secret = secret_new()
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()  # one count-then-insert at a time
        live = WebhookEndpoint.objects.filter(account=account).exclude(status=WebhookEndpoint.Status.REVOKED).count()
        limit = settings.QMAILING_MAX_WEBHOOKS_PER_ACCOUNT
        if live >= limit:
            raise Conflict(f"An account may have {limit} webhook endpoints. Delete one first.",
                           code="webhook_limit_reached")
        endpoint = WebhookEndpoint.objects.create(account=account, url=target.url, description=description,
                                                  event_types=["*"] if "*" in types else types,
                                                  secret_encrypted=secret_encrypt(secret))
    return endpoint, secret


def webhook_revoke(*, endpoint) -> WebhookEndpoint:
    """Revoke an endpoint: nothing more is sent to it. Revoking a revoked endpoint changes nothing."""
    with transaction.atomic():
        current = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if current.status != WebhookEndpoint.Status.REVOKED:
            current.status, current.revoked_at = WebhookEndpoint.Status.REVOKED, timezone.now()
            current.save(update_fields=["status", "revoked_at"])
            current.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
                status=WebhookDelivery.Status.CANCELLED, completed_at=current.revoked_at)
    return current


def webhook_rotate_secret(*, endpoint, overlap_hours=24) -> tuple:
    """A new secret for the endpoint, returned once; the old one still signs for `overlap_hours` (both are sent)."""
    if not 0 <= overlap_hours <= 7 * 24:
        raise Invalid("The overlap can be 0 to 168 hours.", field="overlap_hours")
    secret = secret_new()
    with transaction.atomic():
        current = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if current.status == WebhookEndpoint.Status.REVOKED:
            raise Conflict("This endpoint is revoked; register the URL again.", code="webhook_revoked")
        current.previous_secret_encrypted = current.secret_encrypted
        current.previous_secret_expires_at = timezone.now() + timedelta(hours=overlap_hours)
        current.secret_encrypted = secret_encrypt(secret)
        current.save(update_fields=["previous_secret_encrypted", "previous_secret_expires_at", "secret_encrypted"])
    return current, secret
