"""Agent-facing event operations (see agent.operations): the long-poll over the account's event log."""

from contextlib import nullcontext
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from channels.db import database_sync_to_async
from django.conf import settings
from pydantic import AliasChoices, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import EMAIL_READ
from accounts.tokens import token_alive
from agent.operations import UNTRUSTED_CONTENT  # noqa: F401 - the docstrings say {UNTRUSTED_CONTENT}
from agent.operations import Input, Output, operation
from core.errors import Unauthenticated
from events.models import EventType
from events.selectors import MAX_EVENTS
from events.stream import MAX_WAIT_SECONDS, event_wait, event_wait_async, wait_slots
from mailboxes.selectors import access_mailbox

DEFAULT_WAIT_SECONDS = 20


class EventOut(Output):
    id: UUID = Field(description="The event's id; the same event always has the same id.")
    cursor: int = Field(description="Its position in the account's log.")
    type: Literal[tuple(EventType.values)] = Field(description="What happened, e.g. email.received.")
    mailbox_id: UUID | None = Field(description="The mailbox it concerns, if any.")
    created_at: datetime
    payload: dict[str, Any] = Field(description="Ids and a few fields of what changed (read the rest with the get tools).")


class EventsOut(Output):
    cursor: int = Field(validation_alias=AliasChoices("cursor", "after"), description="The cursor these events follow.")
    next_cursor: int = Field(description="Pass as cursor in the next call to get what happens after these.")
    events: list[EventOut] = Field(description="Oldest first; empty when the wait ended with nothing new.")


class WaitForEventsInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"types": ["email.received"], "timeout_seconds": 20}]})

    cursor: int | None = Field(None, ge=0, le=2**62, description=(
        "next_cursor from the previous call; omit to wait for what happens from now on."))
    mailbox_id: UUID | None = Field(None, description="Only this mailbox's events; omit for the whole account.")
    types: list[Literal[tuple(EventType.values)]] | None = Field(None, max_length=len(EventType.values), description=(
        "Only these event types (e.g. email.received); omit for all."))
    timeout_seconds: float = Field(DEFAULT_WAIT_SECONDS, ge=0, le=MAX_WAIT_SECONDS, description=(
        f"How long to wait for a first event when there is none yet, up to {MAX_WAIT_SECONDS} seconds (0: do not wait)."))
    limit: int = Field(MAX_EVENTS // 2, ge=1, le=MAX_EVENTS, description=f"Most events to return, 1 to {MAX_EVENTS}.")


def _token_recheck(actor):
    """The long-poll's recheck (events.stream.event_wait_async): the token must still admit calls."""
    async def recheck():
        if not await database_sync_to_async(token_alive, thread_sensitive=False)(token_id=actor.token.pk):
            raise Unauthenticated("This token was revoked or expired while the call waited. Issue a new one under "
                                  "Settings → Developers.", bearer_error="invalid_token")
    return recheck


def _own_mailbox_id(*, account, mailbox_id, mailbox_ids):
    return access_mailbox(account=account, mailbox_id=mailbox_id, mailbox_ids=mailbox_ids).pk


_own_mailbox_id_async = database_sync_to_async(_own_mailbox_id, thread_sensitive=False)


async def _wait_for_events_async(*, actor, args):
    """wait_for_events on the event loop (MCP): the wait holds neither a thread nor a database connection."""
    mailbox_id = await _own_mailbox_id_async(account=actor.account, mailbox_id=args.mailbox_id,
                                             mailbox_ids=actor.mailbox_ids) if args.mailbox_id else None
    batch = await event_wait_async(account_id=actor.account.pk, after=args.cursor, mailbox_id=mailbox_id,
                                   types=args.types, limit=args.limit, timeout=args.timeout_seconds,
                                   recheck=_token_recheck(actor), mailbox_ids=actor.mailbox_ids)
    return batch


@operation("GET", "events", scope=EMAIL_READ, plan_group=TOOL_GROUP_MAIL, handler_async=_wait_for_events_async,
           example_prompt="Watch support@ and tell me as soon as a customer writes in.")
def wait_for_events(*, actor, args: WaitForEventsInput) -> EventsOut:
    """Wait for events

    Use to follow the account or one mailbox live: waits up to timeout_seconds (at most {MAX_WAIT_SECONDS}) for
    events after cursor (mail received, sent, delivered, bounced, …). Omit cursor the first time, then loop with
    next_cursor; read what events name with the get tools. {UNTRUSTED_CONTENT}
    """
    # REST's wait holds a thread (MCP awaits _wait_for_events_async), so an account may hold only so many.
    mailbox_id = _own_mailbox_id(account=actor.account, mailbox_id=args.mailbox_id,
                                 mailbox_ids=actor.mailbox_ids) if args.mailbox_id else None
    waits = wait_slots.hold(actor.account.pk, cap=settings.QMAILING_REST_WAITS_PER_ACCOUNT) \
        if args.timeout_seconds > 0 else nullcontext()
    with waits:
        batch = event_wait(account_id=actor.account.pk, after=args.cursor, mailbox_id=mailbox_id, types=args.types,
                           limit=args.limit, timeout=args.timeout_seconds, recheck=_token_recheck(actor),
                           mailbox_ids=actor.mailbox_ids)
    return batch
