"""Push for the MCP server: which mailboxes' event logs moved, told to whoever follows them in this process.

`EventFeeds` (one per McpEndpoint, so one per process) keeps one follower task per account that somebody
follows. The follower is woken by events.stream.event_signal whenever the account's log moves (from any
process with REDIS_URL; from this one on the embedded default) and at least every
`events.stream.poll_seconds()`; it then reads which mailboxes have new events and which of its listeners'
tokens still admit calls — a fixed number of queries per wake-up whatever the number of listeners, then a
fan-out in memory. It holds no database connection while it waits.

A listener is (mailbox id, token id, callback, on_revoked): the callback (sync, cheap, on the event loop) is
called when an event of that mailbox commits and the token is still alive; on_revoked instead, once, when
the token has been revoked or has expired since — the subscription or stream then ends, having told
nothing. Tokens are also checked every TOKEN_RECHECK_SECONDS whatever happens, so a stream ends within that
after a revocation even when no mail arrives (and its end says nothing about mail). MCP subscriptions
(agent.mcp.resources) turn a callback into notifications/resources/updated,
coalescing bursts: the notification means "read it again".

The same follower watches grants for the sessions that listed tools (`watch_grants`): when it is woken
(an event, or agent.receivers' wake-up after a plan change or a token's grant changed) and at least every
TOKEN_RECHECK_SECONDS, it reads what each watcher's token may call now (one query whatever the number of
watchers: agent.gates.actors_of_tokens) and hands each watcher its tool names; the watcher sends
notifications/tools/list_changed when they differ from what its session was shown (agent.mcp.server).

An account holds at most QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT listeners in a process, across all its
sessions and listen streams; past it `listen` raises RateLimited (`too_many_subscriptions`).

Tasks: the followers and the subscriptions' sender tasks are asyncio tasks on the server's loop, tracked
here. A subscription ends on unsubscribe, when its session ends (the session's exit stack, see
agent.mcp.resources), when its token is revoked, or when `close()` cancels everything as the MCP runtime
stops; a follower ends with its account's last listener.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.tokens import token_ids_alive
from agent import gates
from core.errors import RateLimited
from events.selectors import event_latest_cursor, event_mailboxes_between
from events.stream import event_signal, poll_seconds

logger = logging.getLogger(__name__)

_latest_cursor = database_sync_to_async(event_latest_cursor, thread_sensitive=False)
_mailboxes_between = database_sync_to_async(event_mailboxes_between, thread_sensitive=False)
_tokens_alive = database_sync_to_async(token_ids_alive, thread_sensitive=False)
_actors_of_tokens = database_sync_to_async(gates.actors_of_tokens, thread_sensitive=False)
TOKEN_RECHECK_SECONDS = 10  # a revoked token's streams end within this, even when no mail arrives
CLOSE_SECONDS = 5


@dataclass(frozen=True)
class Listener:
    mailbox_id: str
    token_id: int
    callback: object
    on_revoked: object = None


@dataclass
class GrantWatcher:
    """A session that was shown tools: its token (id, app, person: the token a refresh replaces) and the
    callback that receives the names the token may call now (None when no live token stands for it)."""

    token_id: int
    application_id: int | None
    user_id: int
    callback: object


def too_many_subscriptions(cap):
    return RateLimited(f"This account already follows {cap} resources on this server (subscriptions and listen "
                       "streams of all its sessions). Unsubscribe from some first.", retry_after=60,
                       code="too_many_subscriptions", limit=cap)


class EventFeeds:
    def __init__(self):
        self._followers = {}  # account id (str) -> _Follower
        self._tasks = set()

    def spawn(self, coroutine, *, name):
        """A task tracked until it ends, so close() can cancel it."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def listen(self, *, account_id, mailbox_id, token_id, callback, on_revoked=None):
        """Call `callback()` whenever an event of the mailbox commits while the token is alive, `on_revoked()`
        once it is not; returns the idempotent stop callable. RateLimited past the account's cap.

        Returns once the account's follower is live (in the group, cursor read), so nothing that commits
        after this returns is missed.
        """
        account_id = str(account_id)
        follower = self._followers.get(account_id)
        cap = settings.QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT
        if follower is not None and not follower.task.done() and len(follower.listeners) >= cap:
            raise too_many_subscriptions(cap)
        return await self._attach(account_id, "listeners", Listener(str(mailbox_id), token_id, callback, on_revoked))

    async def watch_grants(self, *, account_id, watcher):
        """Hand `watcher.callback` the tool names its token may call whenever the account's grants may have
        changed (see the module docstring); returns the idempotent stop callable. Watchers are not
        subscriptions: one per session that listed tools, bounded by the sessions' own caps."""
        return await self._attach(str(account_id), "watchers", watcher)

    async def _attach(self, account_id, kind, entry):
        """Add `entry` to the account's follower's `kind` ("listeners" or "watchers"), starting the follower if
        none runs; returns once it is live, with the idempotent stop callable (the last one out stops it)."""
        follower = self._followers.get(account_id)
        if follower is None or follower.task.done():
            follower = self._followers[account_id] = _Follower(account_id)
            follower.task = self.spawn(follower.run(), name=f"mcp-events-follower:{account_id}")
        key = object()
        getattr(follower, kind)[key] = entry

        def stop():
            getattr(follower, kind).pop(key, None)
            if not follower.listeners and not follower.watchers:
                follower.stop()
                if self._followers.get(account_id) is follower:
                    del self._followers[account_id]

        try:
            await follower.wait_ready()
        except BaseException:
            stop()
            raise
        return stop

    def watcher_count(self, account_id):
        follower = self._followers.get(str(account_id))
        return len(follower.watchers) if follower is not None else 0

    def listener_count(self, account_id):
        follower = self._followers.get(str(account_id))
        return len(follower.listeners) if follower is not None else 0

    @property
    def task_count(self):
        return len(self._tasks)

    async def close(self):
        """Stop every follower and subscription task and wait for them, a bounded time (the runtime is stopping)."""
        for follower in self._followers.values():
            follower.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            if pending:
                logger.warning("%d event feed tasks did not end within %s s", len(pending), CLOSE_SECONDS)
        self._followers.clear()


class _Follower:
    """The task that hears one account's events and calls the listeners of the mailboxes they concern."""

    def __init__(self, account_id):
        self.account_id = account_id
        self.listeners = {}  # key -> Listener
        self.watchers = {}  # key -> GrantWatcher
        self.task = None
        self._ready = asyncio.Event()
        self._failed = None
        self._stopped = False
        self._signal = None

    def stop(self):
        """End the follower: told, woken and cancelled, so it ends whatever await it is in (a cancellation that
        lands inside a thread hand-off or asyncio's wait_for in Python 3.11 can be lost; the flag cannot)."""
        self._stopped = True
        if self._signal is not None:
            self._signal.set()
        if self.task is not None:
            self.task.cancel()

    async def wait_ready(self):
        await self._ready.wait()
        if self._failed is not None:
            raise RuntimeError("The event feed could not start") from self._failed

    async def _deliver(self, mailbox_ids):
        """Tell the listeners of `mailbox_ids`: one query for their tokens, then callbacks in memory."""
        concerned = [(key, listener) for key, listener in list(self.listeners.items())
                     if listener.mailbox_id in mailbox_ids]
        if concerned:
            await self._call(concerned, notify=True)

    async def _recheck_tokens(self):
        """Every listener's token, on a timer whatever happens in the log: a revoked client's stream ends within
        TOKEN_RECHECK_SECONDS, and when it ends tells nothing about mail arriving."""
        await self._call(list(self.listeners.items()), notify=False)

    async def _check_grants(self):
        """Every watcher's tool names as its token stands now, in one query (agent.gates.actors_of_tokens)."""
        watchers = list(self.watchers.values())
        if not watchers:
            return
        actors = await _actors_of_tokens(token_ids={(watcher.token_id, watcher.application_id, watcher.user_id)
                                                    for watcher in watchers})
        for watcher in watchers:
            actor = actors.get(watcher.token_id)
            try:
                watcher.callback(None if actor is None else frozenset(
                    operation.name for operation in gates.visible_operations(actor)))
            except Exception:  # one broken watcher must not stop the others
                logger.exception("A tool-list watcher failed")

    async def _call(self, listeners, *, notify):
        alive = await _tokens_alive(token_ids={listener.token_id for _, listener in listeners})
        for key, listener in listeners:
            if listener.token_id in alive:
                call = listener.callback if notify else None
            else:  # revoked or expired since it subscribed: it hears nothing more, and ends
                self.listeners.pop(key, None)
                call = listener.on_revoked
            if call is None:
                continue
            try:
                call()
            except Exception:  # one broken listener must not stop the others
                logger.exception("An event listener failed")

    async def run(self):
        async with event_signal(self.account_id) as signal:  # registered first: nothing slips between
            self._signal = signal
            try:
                polled = await _latest_cursor(account_id=self.account_id)
            except Exception as exc:
                self._failed = exc
                logger.exception("Could not start the event feed of account %s", self.account_id)
                raise
            finally:
                self._ready.set()
            checked = grants_checked = time.monotonic()
            while not self._stopped:
                woken = True
                try:
                    async with asyncio.timeout(poll_seconds()):
                        await signal.wait()
                except TimeoutError:
                    woken = False
                if self._stopped:
                    return
                signal.clear()  # before reading: a wake-up from here on is seen by the read or the next wait
                try:
                    if time.monotonic() - checked >= TOKEN_RECHECK_SECONDS:
                        checked = time.monotonic()
                        await self._recheck_tokens()
                    # A wake-up may be a grant change (agent.receivers), which moves no cursor; without Redis one
                    # made in another process is found by this timer.
                    if self.watchers and (woken or time.monotonic() - grants_checked >= TOKEN_RECHECK_SECONDS):
                        grants_checked = time.monotonic()
                        await self._check_grants()
                    latest = await _latest_cursor(account_id=self.account_id)
                    if latest > polled:
                        await self._deliver(await _mailboxes_between(account_id=self.account_id, after=polled, upto=latest))
                        polled = latest
                except Exception:  # a database hiccup: try again at the next wake-up or poll
                    logger.exception("Reading the event log of account %s failed", self.account_id)
