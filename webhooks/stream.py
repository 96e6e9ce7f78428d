"""Waiting for new events: the long-poll of qmailing_wait_for_events, MCP subscriptions and live pages.

Every committed event is announced to its account's group on the channel layer (Redis when REDIS_URL
is set, so every process hears it; in-memory on the embedded default, so this process only). A waiter
joins the group *before* it reads the log, so nothing that commits in between is missed, then sleeps
until an announcement or its poll interval. The poll (0.5 s embedded, 5 s with Redis) is what finds
events written by another process where the layer does not reach (the SMTP server and the worker on
the embedded default), and anything whose announcement was lost. While it sleeps a waiter holds no
database connection.
"""

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from accounts.models import Account
from qmailing.errors import Invalid
from webhooks.models import Event

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 25
MAX_EVENTS = 100
POLL_SECONDS_EMBEDDED = 0.5
POLL_SECONDS_SHARED = 5.0


@dataclass
class EventBatch:
    after: int  # the cursor the batch was read after
    next_cursor: int  # read on from here: every event up to it has been seen (or did not match the filters)
    events: list = field(default_factory=list)


def events_group(account_id):
    """The channel-layer group that hears an account's events (names are ASCII, under 100 characters)."""
    return f"qm-events.{uuid.UUID(str(account_id)).hex}"


def announce(event):
    """subscribe_to_events callback: tell the account's waiters that the log moved (after commit)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "events.new", "cursor": event.cursor, "event_type": event.type,
               "mailbox_id": str(event.mailbox_id) if event.mailbox_id else None}
    async_to_sync(layer.group_send)(events_group(event.account_id), message)


def event_latest_cursor(*, account_id) -> int:
    """The cursor of the account's newest committed event (0 when it has none)."""
    return Account.objects.filter(pk=account_id).values_list("event_cursor", flat=True).first() or 0


def event_batch(*, account_id, after=None, mailbox_id=None, types=None, limit=MAX_EVENTS) -> EventBatch:
    """The account's events after `after` (from now when None), oldest first, at most `limit`.

    Cursors are handed out under a lock on the account row and commit in order, so every event up
    to the account's committed cursor is visible: reading that first and the events up to it never
    skips one that commits later with a smaller number.
    """
    latest = event_latest_cursor(account_id=account_id)
    if after is None:
        return EventBatch(after=latest, next_cursor=latest)
    if after > latest:
        raise Invalid("This cursor is ahead of the event log. Pass next_cursor from an earlier answer, or omit "
                      "cursor to start from now.", field="cursor")
    events = Event.objects.filter(account_id=account_id, cursor__gt=after, cursor__lte=latest)
    if mailbox_id is not None:
        events = events.filter(mailbox_id=mailbox_id)
    if types:
        events = events.filter(type__in=list(types))
    found = list(events.order_by("cursor")[:limit])
    next_cursor = found[-1].cursor if len(found) == limit else latest
    return EventBatch(after=after, next_cursor=next_cursor, events=found)


def event_latest(*, account_id, mailbox_id, limit=MAX_EVENTS // 2) -> EventBatch:
    """The newest `limit` events of one mailbox (oldest first), as a batch: every event of that mailbox after
    `after` up to `next_cursor` (the account's committed cursor) is in it, so a reader can go on from there."""
    latest = event_latest_cursor(account_id=account_id)
    found = list(Event.objects.filter(account_id=account_id, mailbox_id=mailbox_id, cursor__lte=latest)
                 .order_by("-cursor")[:limit])[::-1]
    return EventBatch(after=found[0].cursor - 1 if found else latest, next_cursor=latest, events=found)


def event_mailboxes_between(*, account_id, after, upto, skip=()) -> set:
    """The ids (str) of the mailboxes that have events with a cursor in (after, upto], leaving out cursors in `skip`."""
    events = Event.objects.filter(account_id=account_id, cursor__gt=after, cursor__lte=upto, mailbox_id__isnull=False)
    if skip:
        events = events.exclude(cursor__in=list(skip))
    return {str(mailbox_id) for mailbox_id in events.order_by().values_list("mailbox_id", flat=True).distinct()}


def _release_connections():
    """Give the database connections back while waiting (not inside a transaction, where they must stay)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def poll_seconds():
    """How often a waiter reads the log even without an announcement (see the module docstring)."""
    return POLL_SECONDS_SHARED if settings.REDIS_URL else POLL_SECONDS_EMBEDDED


async def event_wait_async(*, account_id, after=None, mailbox_id=None, types=None, limit=MAX_EVENTS,
                           timeout=MAX_WAIT_SECONDS) -> EventBatch:
    """event_batch, waiting up to `timeout` seconds for a first matching event when there is none yet."""
    timeout = max(0.0, min(float(timeout), MAX_WAIT_SECONDS, settings.QMAILING_EVENTS_WAIT_MAX_SECONDS))
    deadline = time.monotonic() + timeout
    layer = get_channel_layer()
    group = events_group(account_id)
    channel = await layer.new_channel() if layer is not None else None
    if channel is not None:
        await layer.group_add(group, channel)
    read = sync_to_async(event_batch, thread_sensitive=True)
    try:
        first = batch = await read(account_id=account_id, after=after, mailbox_id=mailbox_id, types=types,
                                   limit=limit)
        while not batch.events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await sync_to_async(_release_connections, thread_sensitive=True)()
            pause = min(remaining, poll_seconds())
            try:
                if channel is not None:
                    await asyncio.wait_for(layer.receive(channel), pause)
                else:
                    await asyncio.sleep(pause)
            except asyncio.TimeoutError:
                pass
            batch = await read(account_id=account_id, after=batch.next_cursor, mailbox_id=mailbox_id, types=types,
                               limit=limit)
        batch.after = first.after
        return batch
    finally:
        if channel is not None:
            await layer.group_discard(group, channel)


def event_wait(**kwargs) -> EventBatch:
    """event_wait_async for sync callers (the REST view); the calling thread waits, holding no connection."""
    return async_to_sync(event_wait_async)(**kwargs)
