"""Agent-facing event operations (see agent.operations): the long-poll over the account's event log."""

from contextlib import nullcontext
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from channels.db import database_sync_to_async
from django.conf import settings
from pydantic import AliasChoices, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL, TOOL_GROUP_WEBHOOKS
from accounts.scopes import EMAIL_READ, WEBHOOK_MANAGE
from accounts.tokens import token_alive
from mailboxes.selectors import access_mailbox
from core.errors import Unauthenticated
from agent.operations import UNTRUSTED_CONTENT  # noqa: F401 - the docstrings say {UNTRUSTED_CONTENT}
from agent.operations import Input, NextCursor, Output, PageInput, PageOut, With, operation
from webhooks.models import WEBHOOK_EVENT_TYPES, EventType, WebhookEndpoint
from webhooks.selectors import access_webhook, webhook_list
from webhooks.services import MAX_DESCRIPTION, webhook_register, webhook_revoke, webhook_rotate_secret
from webhooks.ssrf import MAX_URL_LENGTH
from webhooks.stream import MAX_EVENTS, MAX_WAIT_SECONDS, event_wait, event_wait_async, wait_slots

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
    """The long-poll's recheck (webhooks.stream.event_wait_async): the token must still admit calls."""
    async def recheck():
        if not await database_sync_to_async(token_alive, thread_sensitive=False)(token_id=actor.token.pk):
            raise Unauthenticated("This token was revoked or expired while the call waited. Issue a new one under "
                                  "Settings → Developers.", bearer_error="invalid_token")
    return recheck


def _own_mailbox_id(*, account, mailbox_id):
    return access_mailbox(account=account, mailbox_id=mailbox_id).pk


_own_mailbox_id_async = database_sync_to_async(_own_mailbox_id, thread_sensitive=False)


async def _wait_for_events_async(*, actor, args):
    """wait_for_events on the event loop (MCP): the wait holds neither a thread nor a database connection."""
    mailbox_id = await _own_mailbox_id_async(account=actor.account, mailbox_id=args.mailbox_id) \
        if args.mailbox_id else None
    batch = await event_wait_async(account_id=actor.account.pk, after=args.cursor, mailbox_id=mailbox_id,
                                   types=args.types, limit=args.limit, timeout=args.timeout_seconds,
                                   recheck=_token_recheck(actor))
    return batch


@operation("GET", "events", scope=EMAIL_READ, plan_group=TOOL_GROUP_MAIL, handler_async=_wait_for_events_async,
           example_prompt="Watch support@ and tell me as soon as a customer writes in.")
def wait_for_events(*, actor, args: WaitForEventsInput) -> EventsOut:
    """Wait for events

    Wait for something to happen in the account or one mailbox (new mail, sent, delivered, bounced,
    trashed, mailbox and domain changes): returns as soon as there are events after cursor, or empty after
    timeout_seconds (at most {MAX_WAIT_SECONDS}). Loop on it with next_cursor to follow the mailbox; omit
    cursor the first time to start from now. Each event carries ids to read the rest with the get tools.
    {UNTRUSTED_CONTENT}
    """
    # REST's wait holds a thread (MCP awaits _wait_for_events_async), so an account may hold only so many.
    mailbox_id = access_mailbox(account=actor.account, mailbox_id=args.mailbox_id).pk if args.mailbox_id else None
    waits = wait_slots.hold(actor.account.pk, cap=settings.QMAILING_REST_WAITS_PER_ACCOUNT) \
        if args.timeout_seconds > 0 else nullcontext()
    with waits:
        batch = event_wait(account_id=actor.account.pk, after=args.cursor, mailbox_id=mailbox_id, types=args.types,
                           limit=args.limit, timeout=args.timeout_seconds, recheck=_token_recheck(actor))
    return batch


# --- webhook endpoints ------------------------------------------------------------------------------------------

class WebhookOut(Output):
    id: UUID = Field(description="Use with qmailing_delete_webhook.")
    url: str
    description: str
    event_types: list[str] = Field(description='The event types it receives; ["*"] is all.')
    status: Literal[tuple(WebhookEndpoint.Status.values)] = Field(description=(
        "active; disabled (after failing for days, see disabled_reason); revoked (deleted)."))
    disabled_reason: str
    last_success_at: datetime | None = Field(description="When a delivery last succeeded.")
    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    created_at: datetime
    revoked_at: datetime | None


class WebhookPage(PageOut):
    items: list[WebhookOut]
    next_cursor: NextCursor


@operation("GET", "webhooks", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS,
           example_prompt="Which webhooks do I have, and are they healthy?")
def list_webhooks(*, actor, args: PageInput) -> WebhookPage:
    """List webhooks

    List the account's webhook endpoints, newest first, active and revoked: URL, event types, status and
    health (last success, consecutive failures, why one was disabled). Secrets are never shown again.
    """
    return webhook_list(account=actor.account, cursor=args.cursor, limit=args.limit)


class RegisteredWebhookOut(WebhookOut):
    secret: str = Field(description="The whsec_ signing secret, shown this once: store it now to verify deliveries.")


class RegisterWebhookInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://hooks.example.com/qmailing", "event_types": ["email.received"], "description": "CRM"}]})

    url: str = Field(min_length=8, max_length=MAX_URL_LENGTH, description=(
        "The https URL that receives the events (a public address; redirects are not followed)."))
    event_types: list[Literal[("*", *WEBHOOK_EVENT_TYPES)]] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES) + 1,
                                                                   description='Event types to receive, or ["*"] for all.')
    description: str = Field("", max_length=MAX_DESCRIPTION, description="What it is for, shown in lists.")


@operation("POST", "webhooks", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS, success_status=201,
           open_world=True, example_prompt="Send every new email in my account to https://hooks.example.com/qmailing.")
def register_webhook(*, actor, args: RegisterWebhookInput) -> RegisteredWebhookOut:
    """Register a webhook

    Register an https URL to receive the account's events (email.received, email.sent, email.delivered,
    email.bounced, email.trashed, mailbox.created, domain.verified, domain.dns_changed, webhook.disabled,
    or * for all) as signed POSTs (Standard Webhooks). Returns the signing secret once. Only when the user
    asked: events carry ids and subjects of their mail to that URL. {UNTRUSTED_CONTENT}
    """
    endpoint, secret = webhook_register(account=actor.account, url=args.url, event_types=args.event_types,
                                        description=args.description)
    return With(endpoint, secret=secret)


class DeleteWebhookInput(Input):
    webhook_id: UUID = Field(description="The endpoint id, from qmailing_list_webhooks.")


@operation("DELETE", "webhooks/{webhook_id}", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS,
           example_prompt="Stop sending my events to the old CRM webhook.")
def delete_webhook(*, actor, args: DeleteWebhookInput) -> WebhookOut:
    """Delete a webhook

    Revoke a webhook endpoint: nothing more is sent to it (it stays listed as revoked). Deleting one that
    is already revoked changes nothing. Only when the user asked.
    """
    return webhook_revoke(endpoint=access_webhook(account=actor.account, webhook_id=args.webhook_id))


class RotateWebhookSecretInput(Input):
    webhook_id: UUID = Field(description="The endpoint id, from qmailing_list_webhooks.")
    overlap_hours: int = Field(24, ge=0, le=168, description=(
        "Hours during which the old secret keeps signing too (both signatures are sent), so receivers can switch."))


@operation("POST", "webhooks/{webhook_id}/rotate-secret", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS,
           example_prompt="Our webhook secret leaked; give the CRM endpoint a new one.")
def rotate_webhook_secret(*, actor, args: RotateWebhookSecretInput) -> RegisteredWebhookOut:
    """Rotate a webhook secret

    Give a webhook endpoint a new signing secret, returned once. For overlap_hours (24 by default) every
    delivery carries signatures with both the old and the new secret, so the receiver can switch without
    losing events. Only when the user asked.
    """
    endpoint, secret = webhook_rotate_secret(endpoint=access_webhook(account=actor.account, webhook_id=args.webhook_id),
                                             overlap_hours=args.overlap_hours)
    return With(endpoint, secret=secret)
