"""MCP sessions, bounded per token and per account, so no account can use up what the others share.

Sessions (the protocol versions with an initialize handshake) live in the memory of the web process
that opened them, about 40 KB each. The SDK's session manager bounds them only as a whole (10,000 per
process), so one token could take every slot and every other account's initialize would get a 503.
`BoundedSessionManager` adds, per web process:

- at most QMAILING_MCP_SESSIONS_PER_TOKEN (20) sessions per token and QMAILING_MCP_SESSIONS_PER_ACCOUNT
  (100) per account. At a cap, the oldest *idle* session of that token (or account) is evicted to make
  room: a client that restarts without closing its sessions (DELETE) keeps working, and it only ever
  evicts its own. When every one of them has a request in flight (an open GET stream counts), the new
  session is refused with 429 `too_many_sessions`, and nothing else changes.
- a session that never called a tool (tools/call, resources/read, resources/subscribe) ends after
  QMAILING_MCP_UNUSED_SESSION_SECONDS (300) idle, instead of QMAILING_MCP_SESSION_IDLE_SECONDS (1800).
- a session whose token was revoked (or expired) ends within REAP_EVERY_SECONDS, open GET stream and all, so
  a leaked token's sessions neither listen on nor hold the account's slots after the owner revokes it.
- the SDK's own cap (QMAILING_MCP_MAX_SESSIONS) stays as the last line of defence.

Under `run_all --web-workers N` each session id starts with its process's index (`w1-…`, QMAILING_WEB_WORKER), so
the front before the processes (qmailing.front) sends all of a session's requests to the process that holds it.

Who opens a session reaches the manager through a context variable that agent.mcp.http sets for the
request (`opening(actor)`): the SDK admits the session inside the same task, under its creation lock, so
the check and the registration cannot interleave with another initialize.
"""

import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass, field

import anyio
from channels.db import database_sync_to_async
from django.conf import settings
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from accounts.tokens import token_ids_alive
from agent.mcp.resume import SessionEventStore
from core.errors import RateLimited

logger = logging.getLogger(__name__)

REAP_EVERY_SECONDS = 5
_tokens_alive = database_sync_to_async(token_ids_alive, thread_sensitive=False)  # its connection goes back after
RETRY_AFTER_SECONDS = 30


@dataclass
class SessionOwner:
    token_id: int
    account_id: str
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    used: bool = False  # it called a tool, read or subscribed: a session an agent works with


_opener = contextvars.ContextVar("qmailing_mcp_session_opener", default=None)


@contextlib.contextmanager
def opening(actor):
    """Name `actor` as the owner of any session the SDK opens within this block (this request)."""
    reset = _opener.set(SessionOwner(token_id=actor.token.pk, account_id=str(actor.account.pk)))
    try:
        yield
    finally:
        _opener.reset(reset)


def worker_session_prefix(worker):
    """What the session ids of web process `worker` start with; qmailing.front reads it back (SESSION_PREFIX)."""
    return f"w{worker}-"


def too_many_sessions(kind, cap):
    return RateLimited(
        f"This {kind} already holds {cap} open MCP sessions on this server, each with a request in flight. "
        "Close sessions you no longer use (HTTP DELETE /mcp with their Mcp-Session-Id) or wait for one to "
        "finish, then initialize again.", retry_after=RETRY_AFTER_SECONDS, code="too_many_sessions", limit=cap)


class BoundedSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with per-token and per-account caps and a shorter life for unused sessions."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {}  # session id -> SessionOwner, for the sessions opened by an authenticated request

    # --- Admission (called by the SDK, synchronously, under its session-creation lock).

    def _admit_session(self, requestor):
        owner = _opener.get()
        if owner is not None:
            self._make_room(owner)
        # Each session its own event store (agent.mcp.resume): the SDK hands `self.event_store` to the one
        # transport it builds here, and this runs synchronously, so no other session can pick it up.
        self.event_store = SessionEventStore()
        try:
            transport = super()._admit_session(requestor)
        finally:
            self.event_store = None
        if transport is not None and settings.QMAILING_WEB_WORKER:
            self._tag_with_worker(transport)
        if transport is not None and owner is not None:
            self.owners[transport.mcp_session_id] = SessionOwner(token_id=owner.token_id, account_id=owner.account_id)
        return transport

    def _tag_with_worker(self, transport):
        """Prefix the new session's id with this web process's index (`w1-<hex>`): the front of
        `run_all --web-workers N` (qmailing.front) routes every request carrying it to this process.

        The SDK mints the id (uuid4) inside `_admit_session` and has no hook for it; its server task starts only
        after this returns, so re-keying the two maps that hold the id here is all there is to rename."""
        minted = transport.mcp_session_id
        tagged = f"{worker_session_prefix(settings.QMAILING_WEB_WORKER)}{minted}"
        transport.mcp_session_id = tagged
        self._server_instances[tagged] = self._server_instances.pop(minted)
        if minted in self._session_owners:
            self._session_owners[tagged] = self._session_owners.pop(minted)

    def _make_room(self, owner):
        """Evict the oldest idle session of the token, then of the account, where a cap is reached; or refuse."""
        for kind, cap, same in (
                ("token", settings.QMAILING_MCP_SESSIONS_PER_TOKEN, lambda o: o.token_id == owner.token_id),
                ("account", settings.QMAILING_MCP_SESSIONS_PER_ACCOUNT, lambda o: o.account_id == owner.account_id)):
            held = [(session_id, o) for session_id, o in self.owners.items() if same(o)]
            if len(held) < cap:
                continue
            idle = sorted((o.last_active, session_id) for session_id, o in held if o.in_flight == 0)
            if not idle:
                raise too_many_sessions(kind, cap)
            for _, session_id in idle[:len(held) - cap + 1]:
                logger.info("Evicting idle MCP session %s: its %s is at its cap of %d", session_id[:8], kind, cap)
                self.evict(session_id)

    def evict(self, session_id):
        """End a session now: forgotten at once (its id answers 404), its server task and open streams stopped."""
        self.owners.pop(session_id, None)
        self._session_owners.pop(session_id, None)
        transport = self._server_instances.pop(session_id, None)
        if transport is None:
            return
        if transport.idle_scope is not None:
            transport.idle_scope.cancel()  # ends the session's loop; the SDK then terminates the transport
        if self._task_group is not None:
            self._task_group.start_soon(transport.terminate)  # closes a GET stream that is still open

    async def _discard_session(self, session_id, transport):
        self.owners.pop(session_id, None)
        await super()._discard_session(session_id, transport)

    # --- What agent.mcp.http tells about the requests of a session.

    @contextlib.contextmanager
    def serving(self, session_id, *, used):
        """Around one request of an existing session: it is in flight (not evictable), and maybe now used."""
        owner = self.owners.get(session_id) if session_id else None
        if owner is None:
            yield
            return
        owner.in_flight += 1
        owner.used = owner.used or used
        try:
            yield
        finally:
            owner.in_flight -= 1
            owner.last_active = time.monotonic()

    def sessions_of(self, *, token_id=None, account_id=None):
        return [session_id for session_id, owner in self.owners.items()
                if (token_id is None or owner.token_id == token_id)
                and (account_id is None or owner.account_id == str(account_id))]

    # --- Unused sessions end sooner.

    @contextlib.asynccontextmanager
    async def run(self):
        async with super().run():
            self._task_group.start_soon(self._reap_unused)
            yield

    def reap_unused(self, now=None):
        """End the sessions that never called a tool and have been idle for QMAILING_MCP_UNUSED_SESSION_SECONDS."""
        now = time.monotonic() if now is None else now
        limit = settings.QMAILING_MCP_UNUSED_SESSION_SECONDS
        stale = [session_id for session_id, owner in self.owners.items()
                 if not owner.used and owner.in_flight == 0 and now - owner.last_active >= limit]
        for session_id in stale:
            self.evict(session_id)
        return len(stale)

    async def reap_revoked(self):
        """End every session whose token no longer admits calls (one query for all of them), busy or not: an
        open GET stream of a revoked token must neither stay open nor hold its account's session slots."""
        checked = dict(self.owners)  # sessions opened while the query runs are not judged by it
        if not checked:
            return 0
        alive = await _tokens_alive(token_ids={owner.token_id for owner in checked.values()})
        dead = [session_id for session_id, owner in checked.items() if owner.token_id not in alive]
        for session_id in dead:
            self.evict(session_id)
        return len(dead)

    async def _reap_unused(self):
        while True:
            await anyio.sleep(min(REAP_EVERY_SECONDS, settings.QMAILING_MCP_UNUSED_SESSION_SECONDS))
            try:
                unused, revoked = self.reap_unused(), await self.reap_revoked()
                if unused or revoked:
                    logger.info("Ended %d MCP sessions that never called a tool and %d of revoked tokens",
                                unused, revoked)
            except Exception:  # the reaper must outlive any surprise; the next round tries again
                logger.exception("Reaping MCP sessions failed")
