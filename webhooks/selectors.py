from django.core.exceptions import ValidationError

from qmailing.errors import NotFound
from qmailing.pagination import Page, keyset_page
from webhooks.models import Event, WebhookDelivery, WebhookEndpoint


def event_list(*, account, after=0, mailbox=None, types=None, limit=100):
    """Events of one account after a cursor, oldest first."""
    events = Event.objects.filter(account=account, cursor__gt=after)
    if mailbox is not None:
        events = events.filter(mailbox=mailbox)
    if types:
        events = events.filter(type__in=types)
    return list(events.order_by("cursor")[:limit])


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
