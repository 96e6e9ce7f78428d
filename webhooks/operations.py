"""Agent-facing event operations (see qmailing.operations): the long-poll over the account's event log."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import EMAIL_READ
from mailboxes.selectors import access_mailbox
from qmailing.operations import READ_ONLY, UNTRUSTED_CONTENT, Input, Operation, register
from webhooks.models import EventType
from webhooks.stream import MAX_EVENTS, MAX_WAIT_SECONDS, event_wait

DEFAULT_WAIT_SECONDS = 20


class EventOut(BaseModel):
    id: UUID = Field(description="The event's id; the same event always has the same id.")
    cursor: int = Field(description="Its position in the account's log.")
    type: Literal[tuple(EventType.values)] = Field(description="What happened, e.g. email.received.")
    mailbox_id: UUID | None = Field(description="The mailbox it concerns, if any.")
    created_at: datetime
    payload: dict[str, Any] = Field(description="Ids and a few fields of what changed (read the rest with the get tools).")

    @classmethod
    def of(cls, event):
        return cls(id=event.id, cursor=event.cursor, type=event.type, mailbox_id=event.mailbox_id,
                   created_at=event.created_at, payload=event.payload)


class EventsOut(BaseModel):
    cursor: int = Field(description="The cursor these events follow.")
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


def _wait_for_events(*, actor, args):
    mailbox_id = access_mailbox(account=actor.account, mailbox_id=args.mailbox_id).pk if args.mailbox_id else None
    batch = event_wait(account_id=actor.account.pk, after=args.cursor, mailbox_id=mailbox_id, types=args.types,
                       limit=args.limit, timeout=args.timeout_seconds)
    return EventsOut(cursor=batch.after, next_cursor=batch.next_cursor, events=[EventOut.of(e) for e in batch.events])


register(Operation(
    name="qmailing_wait_for_events",
    title="Wait for events",
    example_prompt="Watch support@ and tell me as soon as a customer writes in.",
    description=("Wait for something to happen in the account or one mailbox (new mail, sent, delivered, bounced, "
                 f"trashed, mailbox and domain changes): returns as soon as there are events after cursor, or "
                 f"empty after timeout_seconds (at most {MAX_WAIT_SECONDS}). Loop on it with next_cursor to follow "
                 "the mailbox; omit cursor the first time to start from now. Each event carries ids to read "
                 "the rest with the get tools. " + UNTRUSTED_CONTENT),
    input=WaitForEventsInput, output=EventsOut, scope=EMAIL_READ, plan_group=TOOL_GROUP_MAIL, annotations=READ_ONLY,
    method="GET", path="events", handler=_wait_for_events,
))
