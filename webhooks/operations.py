"""Agent-facing webhook operations (see agent.operations): the account's webhook endpoints."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from accounts.models import TOOL_GROUP_WEBHOOKS
from accounts.scopes import WEBHOOK_MANAGE
from agent.operations import Input, NextCursor, Output, PageInput, PageOut, With, operation
from webhooks.models import WEBHOOK_EVENT_TYPES, WebhookEndpoint
from webhooks.selectors import access_webhook, webhook_list
from webhooks.services import MAX_DESCRIPTION, webhook_register, webhook_revoke, webhook_rotate_secret
from webhooks.ssrf import MAX_URL_LENGTH

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
           account_wide=True, example_prompt="Which webhooks do I have, and are they healthy?")
def list_webhooks(*, actor, args: PageInput) -> WebhookPage:
    """List webhooks

    Use to see the account's webhook endpoints and their health (status, last success, failures); secrets are
    never shown again.
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
           account_wide=True, open_world=True, example_prompt="Send every new email in my account to https://hooks.example.com/qmailing.")
def register_webhook(*, actor, args: RegisterWebhookInput) -> RegisteredWebhookOut:
    """Register a webhook

    Use only when the user asks: an https URL then receives the account's events (email.received, …, or * for
    all) as signed POSTs carrying ids and subjects. Returns the signing secret once.
    """
    endpoint, secret = webhook_register(account=actor.account, url=args.url, event_types=args.event_types,
                                        description=args.description)
    return With(endpoint, secret=secret)


class DeleteWebhookInput(Input):
    webhook_id: UUID = Field(description="The endpoint id, from qmailing_list_webhooks.")


@operation("DELETE", "webhooks/{webhook_id}", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS,
           account_wide=True, example_prompt="Stop sending my events to the old CRM webhook.")
def delete_webhook(*, actor, args: DeleteWebhookInput) -> WebhookOut:
    """Delete a webhook

    Use only when the user asks to stop deliveries to an endpoint: revokes it (it stays listed as revoked).
    """
    return webhook_revoke(endpoint=access_webhook(account=actor.account, webhook_id=args.webhook_id))


class RotateWebhookSecretInput(Input):
    webhook_id: UUID = Field(description="The endpoint id, from qmailing_list_webhooks.")
    overlap_hours: int = Field(24, ge=0, le=168, description=(
        "Hours during which the old secret keeps signing too (both signatures are sent), so receivers can switch."))


@operation("POST", "webhooks/{webhook_id}/rotate-secret", scope=WEBHOOK_MANAGE, plan_group=TOOL_GROUP_WEBHOOKS,
           account_wide=True, example_prompt="Our webhook secret leaked; give the CRM endpoint a new one.")
def rotate_webhook_secret(*, actor, args: RotateWebhookSecretInput) -> RegisteredWebhookOut:
    """Rotate a webhook secret

    Use only when the user asks, e.g. after a leak: gives an endpoint a new signing secret, returned once; both
    secrets sign for overlap_hours so the receiver can switch.
    """
    endpoint, secret = webhook_rotate_secret(endpoint=access_webhook(account=actor.account, webhook_id=args.webhook_id),
                                             overlap_hours=args.overlap_hours)
    return With(endpoint, secret=secret)
