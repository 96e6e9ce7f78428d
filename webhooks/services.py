import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from core.errors import Conflict, Invalid
from webhooks.models import WEBHOOK_EVENT_TYPES, Event, WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_encrypt, secret_new
from webhooks.ssrf import webhook_target

logger = logging.getLogger(__name__)

MAX_DESCRIPTION = 240

# Called with each event inside the transaction that writes it (webhooks.delivery.deliveries_create,
# registered in WebhooksConfig.ready, so this module never imports delivery).
_written_hooks = []


def on_event_written(hook):
    if hook not in _written_hooks:
        _written_hooks.append(hook)
    return hook


# Callables run after an event commits (push to webhooks, long-polls, websockets). Later layers register here.
_subscribers = []


def subscribe_to_events(callback):
    _subscribers.append(callback)
    return callback


def event_publish(*, account, type, payload, mailbox=None):
    """Append an event to the account's log.

    The row is written inside the caller's transaction, so it commits exactly when the change it
    reports commits and vanishes with it on rollback. The cursor comes from a row lock on the
    account, so cursors become visible in increasing order and a reader never skips one. Push
    (webhooks, waiters) is scheduled on commit.
    """
    # Two statements, no savepoint: ingest publishes once per message and each round trip counts.
    with transaction.atomic(savepoint=False):
        event = Event(account_id=account.pk, mailbox=mailbox, cursor=_next_cursor(account.pk), type=type, payload=payload)
        event.save(force_insert=True)
        for hook in _written_hooks:  # webhook deliveries: one per endpoint that wants it, committed with the event
            hook(event)
    transaction.on_commit(lambda: _notify(event))
    return event


def _next_cursor(account_id):
    """Bump and read the account's cursor in one statement; the row lock lasts until commit."""
    table = connection.ops.quote_name(Account._meta.db_table)
    column = connection.ops.quote_name(Account._meta.get_field("event_cursor").column)
    pk = connection.ops.quote_name(Account._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = {column} + 1 WHERE {pk} = %s RETURNING {column}",
                       [Account._meta.pk.get_db_prep_value(account_id, connection)])
        return cursor.fetchone()[0]


def _notify(event):
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # one failing consumer must not block the others
            logger.exception("event subscriber %r failed for %s", callback, event.id)


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
