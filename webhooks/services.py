import logging

from django.db import transaction
from django.db.models import F

from accounts.models import Account
from webhooks.models import Event

logger = logging.getLogger(__name__)

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
    with transaction.atomic():
        Account.objects.filter(pk=account.pk).update(event_cursor=F("event_cursor") + 1)
        cursor = Account.objects.filter(pk=account.pk).values_list("event_cursor", flat=True).get()
        event = Event.objects.create(account_id=account.pk, mailbox=mailbox, cursor=cursor, type=type, payload=payload)
    transaction.on_commit(lambda: _notify(event))
    return event


def _notify(event):
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # one failing consumer must not block the others
            logger.exception("event subscriber %r failed for %s", callback, event.id)
