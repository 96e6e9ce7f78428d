from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Count, Max
from django.utils import timezone

from core.errors import NotFound
from core.pagination import Page, keyset_page
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

HEALTH_WINDOW = timedelta(days=7)


def webhook_list(*, account, cursor=None, limit=50) -> Page:
    """The account's endpoints, active and revoked, newest first, with their health fields."""
    return keyset_page(WebhookEndpoint.objects.filter(account=account), cursor=cursor, limit=limit,
                       time_field="created_at")


def access_webhook(*, account, webhook_id) -> WebhookEndpoint:
    """The account's endpoint, or NotFound (the same for missing and foreign)."""
    try:
        return WebhookEndpoint.objects.get(pk=webhook_id, account=account)
    except (WebhookEndpoint.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No webhook endpoint with this id exists in your account.")


def webhook_deliveries(*, endpoint, cursor=None, limit=50) -> Page:
    """An endpoint's delivery log, newest first, each with its event and its attempts (for the dashboard)."""
    deliveries = (WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
                  .prefetch_related("attempt_log"))
    return keyset_page(deliveries, cursor=cursor, limit=limit, time_field="created_at")


def webhook_health(endpoints, *, now=None) -> dict:
    """Per endpoint id, over deliveries created in HEALTH_WINDOW (an index range, however old the endpoint):
    the last failed attempt, and the share of finished deliveries that succeeded."""
    since = (now or timezone.now()) - HEALTH_WINDOW
    ids = [endpoint.pk for endpoint in endpoints]
    health = {pk: {"last_failure_at": None, "succeeded": 0, "failed": 0, "total": 0, "rate": None} for pk in ids}
    if not ids:
        return health
    recent = WebhookDelivery.objects.filter(endpoint_id__in=ids, created_at__gte=since)
    finished = (recent.filter(status__in=[WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED])
                .values("endpoint_id", "status").annotate(count=Count("id")).order_by())
    for row in finished:
        key = "succeeded" if row["status"] == WebhookDelivery.Status.SUCCEEDED else "failed"
        health[row["endpoint_id"]][key] += row["count"]
    failures = (WebhookAttempt.objects.filter(delivery__in=recent).exclude(error="")
                .values("delivery__endpoint_id").annotate(last=Max("started_at")).order_by())
    for row in failures:
        health[row["delivery__endpoint_id"]]["last_failure_at"] = row["last"]
    for item in health.values():
        item["total"] = item["succeeded"] + item["failed"]
        item["rate"] = round(100 * item["succeeded"] / item["total"]) if item["total"] else None
    return health


def access_delivery(endpoint, delivery_id) -> WebhookDelivery:
    """One delivery of this endpoint, or NotFound (a delivery id of another endpoint is not found here)."""
    try:
        delivery = WebhookDelivery.objects.filter(endpoint=endpoint, pk=delivery_id).first()
    except (ValidationError, ValueError, TypeError):
        delivery = None
    if delivery is None:
        raise NotFound("No delivery with this id exists for this endpoint.")
    return delivery
