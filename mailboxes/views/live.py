"""Live mail pages: a websocket that tells a signed-in page when its account's mail changed.

The page (templates/mailboxes/_mail_scripts.html) then fetches itself and swaps in the new list and
sidebar; nothing about the mail travels over the socket but event types and mailbox ids. Fed by the
event log through events.stream (the same wake-ups as MCP subscriptions and wait_for_events): a
delivery to the SMTP server in another process reaches an open page within the stream's poll interval,
or at once with Redis. The socket closes (4401) when its session ends (sign-out, "sign out other
sessions"), checked at least every MAX_WAIT_SECONDS.
"""

import asyncio
import json
import logging
from collections import Counter

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.auth import get_user
from django.conf import settings
from django.urls import path
from django.utils.module_loading import import_string

from events.models import EventType
from events.selectors import event_latest_cursor
from events.stream import MAX_WAIT_SECONDS, event_wait_async

logger = logging.getLogger(__name__)

MAIL_EVENTS = [EventType.EMAIL_RECEIVED, EventType.EMAIL_SENT, EventType.EMAIL_DELIVERED, EventType.EMAIL_BOUNCED,
               EventType.EMAIL_FAILED, EventType.EMAIL_TRASHED, EventType.MAILBOX_CREATED, EventType.MAILBOX_DELETED]
MAX_SOCKETS_PER_ACCOUNT = 20  # per process: tabs left open should not hold unbounded waiters
CLOSE_SIGNED_OUT = 4401
CLOSE_TOO_MANY = 4429
_open = Counter()


def _account_id(user):
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return user.account_id


async def _session_alive(session_key, user_id):
    """The socket's session, read afresh, still signs in the same active user with their current password: the
    check Django makes on every HTTP request (channels.auth.get_user: the backend, is_active, the password hash),
    so sign-out, "sign out other sessions", deactivation and a password change all end the socket."""
    if not session_key:
        return False
    store = import_string(settings.SESSION_ENGINE + ".SessionStore")(session_key)
    user = await get_user({"session": store})
    return user.is_authenticated and user.pk == user_id


class MailConsumer(AsyncWebsocketConsumer):
    account_id = None
    task = None

    async def connect(self):
        user = self.scope.get("user")
        await self.accept()
        self.account_id = await database_sync_to_async(_account_id)(user)
        if self.account_id is None:
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        if _open[self.account_id] >= MAX_SOCKETS_PER_ACCOUNT:
            self.account_id = None
            await self.close(code=CLOSE_TOO_MANY)
            return
        _open[self.account_id] += 1
        self.user_id = user.pk
        self.session_key = self.scope["session"].session_key
        self.task = asyncio.ensure_future(self.follow())

    async def disconnect(self, code):
        if self.task is not None:
            self.task.cancel()
        if self.account_id is not None:
            _open[self.account_id] -= 1
            if _open[self.account_id] <= 0:
                del _open[self.account_id]
            self.account_id = None

    async def receive(self, text_data=None, bytes_data=None):
        """The page sends nothing; whatever arrives is ignored."""

    async def follow(self):
        try:
            cursor = await database_sync_to_async(event_latest_cursor)(account_id=self.account_id)
            while True:
                batch = await event_wait_async(account_id=self.account_id, after=cursor, types=MAIL_EVENTS,
                                               timeout=MAX_WAIT_SECONDS)
                cursor = batch.next_cursor
                if not await _session_alive(self.session_key, self.user_id):
                    await self.close(code=CLOSE_SIGNED_OUT)
                    return
                if batch.events:
                    await self.send(text_data=json.dumps({
                        "type": "mail", "cursor": cursor,
                        "events": [{"type": event.type, "mailbox_id": str(event.mailbox_id or "")} for event in batch.events]}))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("The live mail socket stopped following the event log")
            await self.close(code=1011)


websocket_urls = [path("ws/mail/", MailConsumer.as_asgi())]
