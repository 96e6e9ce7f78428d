"""Push for the MCP server: which mailboxes' event logs moved, told to whoever follows them in this process.

`EventFeeds` (one per McpEndpoint, so one per process) keeps one follower task per account that somebody
follows. The follower is woken by webhooks.stream.event_signal whenever the account's log moves (from any
process with REDIS_URL; from this one on the embedded default) and at least every
`webhooks.stream.poll_seconds()`; it then reads which mailboxes have new events (one query for every
listener of the account) — the same two paths as `event_wait_async`. It holds no database connection
while it waits.

A listener is a (mailbox id, callback) pair: the callback (sync, cheap, on the event loop) is called
when an event of that mailbox commits. MCP subscriptions (mcp_bridge.resources) turn it into
notifications/resources/updated, coalescing bursts: the notification means "read it again".

Tasks: the followers and the subscriptions' sender tasks are asyncio tasks on the server's loop, tracked
here. A subscription ends on unsubscribe, when its session ends (the session's exit stack, see
mcp_bridge.resources), or when `close()` cancels everything as the MCP runtime stops; a follower ends
with its account's last listener.
"""

import asyncio
import logging

from channels.db import database_sync_to_async

from webhooks.stream import event_latest_cursor, event_mailboxes_between, event_signal, poll_seconds

logger = logging.getLogger(__name__)

_latest_cursor = database_sync_to_async(event_latest_cursor, thread_sensitive=False)
_mailboxes_between = database_sync_to_async(event_mailboxes_between, thread_sensitive=False)


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

    async def listen(self, *, account_id, mailbox_id, callback):
        """Call `callback()` whenever an event of the mailbox commits; returns the idempotent stop callable.

        Returns once the account's follower is live (in the group, cursor read), so nothing that commits
        after this returns is missed.
        """
        account_id = str(account_id)
        follower = self._followers.get(account_id)
        if follower is None or follower.task.done():
            follower = self._followers[account_id] = _Follower(account_id)
            follower.task = self.spawn(follower.run(), name=f"mcp-events-follower:{account_id}")
        token = object()
        follower.listeners[token] = (str(mailbox_id), callback)

        def stop():
            follower.listeners.pop(token, None)
            if not follower.listeners:
                follower.task.cancel()
                if self._followers.get(account_id) is follower:
                    del self._followers[account_id]

        try:
            await follower.wait_ready()
        except BaseException:
            stop()
            raise
        return stop

    @property
    def task_count(self):
        return len(self._tasks)

    async def close(self):
        """Cancel every follower and subscription task and wait for them (the runtime is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._followers.clear()


class _Follower:
    """The task that hears one account's events and calls the listeners of the mailboxes they concern."""

    def __init__(self, account_id):
        self.account_id = account_id
        self.listeners = {}  # token -> (mailbox id, callback)
        self.task = None
        self._ready = asyncio.Event()
        self._failed = None

    async def wait_ready(self):
        await self._ready.wait()
        if self._failed is not None:
            raise RuntimeError("The event feed could not start") from self._failed

    def _deliver(self, mailbox_ids):
        for mailbox_id, callback in list(self.listeners.values()):
            if mailbox_id in mailbox_ids:
                try:
                    callback()
                except Exception:  # one broken listener must not stop the others
                    logger.exception("An event listener failed")

    async def run(self):
        async with event_signal(self.account_id) as signal:  # registered first: nothing slips between
            try:
                polled = await _latest_cursor(account_id=self.account_id)
            except Exception as exc:
                self._failed = exc
                logger.exception("Could not start the event feed of account %s", self.account_id)
                raise
            finally:
                self._ready.set()
            while True:
                try:
                    await asyncio.wait_for(signal.wait(), poll_seconds())
                except asyncio.TimeoutError:
                    pass
                signal.clear()  # before reading: a wake-up from here on is seen by the read or the next wait
                try:
                    latest = await _latest_cursor(account_id=self.account_id)
                    if latest > polled:
                        self._deliver(await _mailboxes_between(account_id=self.account_id, after=polled, upto=latest))
                        polled = latest
                except Exception:  # a database hiccup: try again at the next wake-up or poll
                    logger.exception("Reading the event log of account %s failed", self.account_id)
