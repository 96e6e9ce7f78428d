import logging

from django.db import connection, transaction

from accounts.models import Account
from events.models import Event
from events.signals import event_committed, event_written

logger = logging.getLogger(__name__)


def event_publish(*, account, type, payload, mailbox=None):
    """Append an event to the account's log.

    The row is written inside the caller's transaction, so it commits exactly when the change it
    reports commits and vanishes with it on rollback. The cursor comes from a row lock on the
    account, so cursors become visible in increasing order and a reader never skips one. Push
    (webhooks, waiters) is scheduled on commit.
    """
    # No savepoint, and on PostgreSQL one statement: ingest publishes once per message and each round trip counts.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            event = Event(account_id=account.pk, mailbox=mailbox, cursor=0, type=type, payload=payload)
            _insert_with_next_cursor(event)
        else:
            event = Event(account_id=account.pk, mailbox=mailbox, cursor=_next_cursor(account.pk), type=type,
                          payload=payload)
            event.save(force_insert=True)
        # Webhook deliveries: one per endpoint that wants it, committed with the event.
        event_written.send(sender=Event, event=event)
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


def _insert_with_next_cursor(event):
    """PostgreSQL: bump the account's cursor and insert the event with it in one statement (a data-modifying CTE;
    the UPDATE takes the same row lock as _next_cursor, held until commit)."""
    quote = connection.ops.quote_name
    fields = [field for field in Event._meta.concrete_fields if field.name != "cursor"]
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
    account_table, account_cursor = quote(Account._meta.db_table), quote(Account._meta.get_field("event_cursor").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH bumped AS (UPDATE {account_table} SET {account_cursor} = {account_cursor} + 1"
            f" WHERE {quote(Account._meta.pk.column)} = %s RETURNING {account_cursor})"
            f" INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(field.column) for field in fields)},"
            f" {quote(Event._meta.get_field('cursor').column)})"
            f" VALUES ({', '.join(['%s'] * len(fields))}, (SELECT {account_cursor} FROM bumped))"
            f" RETURNING {quote(Event._meta.get_field('cursor').column)}",
            [Account._meta.pk.get_db_prep_value(event.account_id, connection), *values])
        event.cursor = cursor.fetchone()[0]
    event._state.adding, event._state.db = False, connection.alias


def _notify(event):
    for receiver, outcome in event_committed.send_robust(sender=Event, event=event):
        if isinstance(outcome, Exception):  # one failing consumer must not block the others
            logger.error("event subscriber %r failed for %s", receiver, event.id, exc_info=outcome)
