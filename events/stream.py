"""Waiting for new events: the long-poll of qmailing_wait_for_events, MCP subscriptions and live pages.

Every committed event wakes the account's waiters: in this process directly (a thread-safe registry of
asyncio events), and, with REDIS_URL, in every process through a Redis PUBLISH that one listener thread
per process relays to its waiters. A waiter registers *before* it reads the log, so nothing that commits
in between is missed, then sleeps until woken or its poll interval. The poll (0.5 s embedded, 5 s with
Redis) is what finds events written by another process on the embedded default (the SMTP server, the
worker) and anything whose wake-up was lost. While it sleeps a waiter holds no database connection.

Redis pub/sub rather than channels_redis groups: a channel-layer receive() per waiter, cancelled at each
timeout, hung under ten concurrent waiters (one receive lock per process), and group_send cost ~3.5 ms
per event on the publishing side; a PUBLISH costs one round trip and waiters cost nothing in Redis.
"""

import asyncio
import logging
import threading
import time
import uuid
from contextlib import contextmanager

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections

from core import ratelimit
from core.errors import RateLimited
from events.selectors import MAX_EVENTS, EventBatch, event_batch

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 25
POLL_SECONDS_EMBEDDED = 0.5
POLL_SECONDS_SHARED = 5.0


def _redis_channel(account_id):
    return f"{settings.QMAILING_EVENTS_CHANNEL_PREFIX}{uuid.UUID(str(account_id)).hex}"


class _Waiters:
    """This process's waiters by account: (event loop, asyncio.Event) pairs, woken thread-safely."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_account = {}
        self._listener = None

    def add(self, account_id, entry):
        with self._lock:
            self._by_account.setdefault(str(account_id), set()).add(entry)
            self.ensure_listener()

    def ensure_listener(self):
        """Start the process's Redis subscriber if it is not running (call with the lock held)."""
        if settings.REDIS_URL and (self._listener is None or not self._listener.is_alive()):
            self._listener = threading.Thread(target=_listen_redis, name="qmailing-events-listener", daemon=True)
            self._listener.start()

    def remove(self, account_id, entry):
        with self._lock:
            entries = self._by_account.get(str(account_id))
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del self._by_account[str(account_id)]

    def wake(self, account_id):
        with self._lock:
            entries = list(self._by_account.get(str(account_id), ()))
        for loop, signal in entries:
            try:
                loop.call_soon_threadsafe(signal.set)
            except RuntimeError:  # that loop has closed; its waiter is gone
                pass


_waiters = _Waiters()
_wake_hooks = []  # functions(account_id, payload) called on every wake-up, local or relayed (on_wake)
_subscription = {"epoch": 0, "live": False, "url": None}  # the Redis subscriber's state (wake_epoch)
_publishers = {}  # REDIS_URL -> (client, its RedisOutage): one connection pool per URL for the whole process
_publishers_lock = threading.Lock()


def _redis():
    """The publishing client for REDIS_URL, and the breaker that skips it for a few seconds after a failure."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with _publishers_lock:
        if settings.REDIS_URL not in _publishers:
            # Short timeouts: the PUBLISH runs on commit in the request's thread, and a Redis that stopped
            # answering held each write 5 s. One retry, on a connection error, reconnects after a Redis restart.
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=1.0,
                                          retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
            outage = ratelimit.RedisOutage(name="event wake-ups", log=logger,
                                           consequence="waiters in other processes find new events by polling")
            _publishers[settings.REDIS_URL] = (client, outage)
        return _publishers[settings.REDIS_URL]


def _listen_redis():
    """The process's one Redis subscriber: relays every account's wake-ups to the waiters here."""
    import redis

    pattern = f"{settings.QMAILING_EVENTS_CHANNEL_PREFIX}*"
    prefix = len(settings.QMAILING_EVENTS_CHANNEL_PREFIX)
    url = settings.REDIS_URL
    while settings.REDIS_URL == url:  # settings changed under it (tests): the next ensure_listener starts anew
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
            pubsub = client.pubsub()
            pubsub.psubscribe(pattern)
            for message in pubsub.listen():
                if message.get("type") == "psubscribe":  # from here on every wake-up reaches this process
                    _subscription.update(epoch=_subscription["epoch"] + 1, live=True, url=url)
                    continue
                if message.get("type") != "pmessage":
                    continue
                channel = message.get("channel") or b""
                channel = channel.decode("ascii", "replace") if isinstance(channel, bytes) else channel
                try:
                    account_id = uuid.UUID(hex=channel[prefix:])
                except ValueError:
                    continue
                _waiters.wake(account_id)
                _run_hooks(account_id, message.get("data"))
        except Exception:  # Redis away: waiters still poll; try again shortly
            _subscription["live"] = False
            logger.warning("The event listener lost Redis; reconnecting", exc_info=True)
            time.sleep(1)
    _subscription["live"] = False


def _run_hooks(account_id, payload):
    for hook in list(_wake_hooks):
        try:
            hook(account_id, payload)
        except Exception:
            logger.exception("A wake-up hook failed")


def on_wake(hook):
    """Call `hook(account_id, payload)` on every wake-up of any account, from this process or (with REDIS_URL)
    relayed from another one; starts the process's Redis subscriber. Once per hook (agent.token_cache)."""
    if hook not in _wake_hooks:
        _wake_hooks.append(hook)
    with _waiters._lock:
        _waiters.ensure_listener()


def wake_epoch():
    """With REDIS_URL: a number that changes each time the process's subscriber (re)subscribed, or None while it
    is not subscribed (wake-ups from other processes may then be lost). Without Redis: 0 (no subscriber)."""
    if not settings.REDIS_URL:
        return 0
    with _waiters._lock:
        _waiters.ensure_listener()
    live = _subscription["live"] and _subscription["url"] == settings.REDIS_URL
    return _subscription["epoch"] if live else None


def announce(*, event, **kwargs):
    """Wake the account's waiters here and, with Redis, in every process (an event_committed receiver).

    An unreachable Redis is logged, never raised: this runs after the event's transaction committed, and
    a wake-up is only a hint. Other processes' waiters then see the event at their next poll
    (POLL_SECONDS_SHARED).
    """
    wake(event.account_id, payload=event.cursor)


def wake(account_id, *, payload=0):
    """Wake the account's waiters here and in every process, without an event: for a change they check
    themselves (the MCP sessions' tool lists, agent.mcp.push, when a plan or a token's grant changed). Call
    it once the change committed. The same hint as `announce`, with the same fallback: the waiters' polls."""
    _waiters.wake(account_id)
    _run_hooks(account_id, payload)
    if not settings.REDIS_URL:
        return
    client, outage = _redis()
    if outage.skipping():
        return
    try:
        client.publish(_redis_channel(account_id), payload)
    except ratelimit.REDIS_DOWN as error:
        outage.failed(error)
    else:
        outage.answered()


class event_signal:
    """`async with event_signal(account_id) as signal:` an asyncio.Event set whenever the account's log moves."""

    def __init__(self, account_id):
        self.account_id = account_id

    async def __aenter__(self):
        self.signal = asyncio.Event()
        self.entry = (asyncio.get_running_loop(), self.signal)
        _waiters.add(self.account_id, self.entry)
        return self.signal

    async def __aexit__(self, *exc):
        _waiters.remove(self.account_id, self.entry)
        return False


def _release_connections():
    """Give the database connections back while waiting (not inside a transaction, where they must stay)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def poll_seconds():
    """How often a waiter reads the log even without an announcement (see the module docstring)."""
    return POLL_SECONDS_SHARED if settings.REDIS_URL else POLL_SECONDS_EMBEDDED


async def event_wait_async(*, account_id, after=None, mailbox_id=None, types=None, limit=MAX_EVENTS,
                           timeout=MAX_WAIT_SECONDS, recheck=None, mailbox_ids=None) -> EventBatch:
    """event_batch, waiting up to `timeout` seconds for a first matching event when there is none yet.

    `recheck` (an async callable that raises when the caller may no longer read, e.g. its token was revoked)
    runs each time the wait wakes, and again before events are returned: a long-poll that was already
    waiting when its token was revoked answers that refusal, never what arrived after.
    """
    timeout = max(0.0, min(float(timeout), MAX_WAIT_SECONDS, settings.QMAILING_EVENTS_WAIT_MAX_SECONDS))
    deadline = time.monotonic() + timeout
    read = sync_to_async(event_batch, thread_sensitive=True)
    async with event_signal(account_id) as signal:  # registered before the first read: no wake-up is missed
        # A connection left open on this thread by an earlier call may have died (a database restart): the read
        # takes one from the pool, which checks it, instead of failing this call.
        await sync_to_async(_release_connections, thread_sensitive=True)()
        first = batch = await read(account_id=account_id, after=after, mailbox_id=mailbox_id, types=types,
                                   limit=limit, mailbox_ids=mailbox_ids)
        woke = False
        while not batch.events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await sync_to_async(_release_connections, thread_sensitive=True)()
            try:
                await asyncio.wait_for(signal.wait(), min(remaining, poll_seconds()))
            except asyncio.TimeoutError:
                pass
            woke = True
            signal.clear()  # before the read: a wake-up from here on is seen by it or wakes the next wait
            if recheck is not None:
                await recheck()
            batch = await read(account_id=account_id, after=batch.next_cursor, mailbox_id=mailbox_id, types=types,
                               limit=limit, mailbox_ids=mailbox_ids)
        if woke and batch.events and recheck is not None:
            await recheck()
        batch.after = first.after
        return batch


class _WaitSlots:
    """Waiting requests that hold a thread each (REST long-polls), counted per account in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}

    @contextmanager
    def hold(self, account_id, *, cap):
        key = str(account_id)
        with self._lock:
            if self._held.get(key, 0) >= cap:
                raise RateLimited(f"This account already has {cap} requests waiting for events. Wait for one to "
                                  "answer, use fewer parallel long-polls, or use the MCP tool, which waits "
                                  "without holding a thread.", retry_after=MAX_WAIT_SECONDS, code="too_many_waits",
                                  limit=cap)
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]


wait_slots = _WaitSlots()


def event_wait(**kwargs) -> EventBatch:
    """event_wait_async for sync callers (the REST view); the calling thread waits, holding no connection."""
    return async_to_sync(event_wait_async)(**kwargs)
