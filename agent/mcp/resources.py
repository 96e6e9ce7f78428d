"""The MCP resource `mailbox://{mailbox_id}/events`: one mailbox's slice of the account's event log.

- resources/templates/list: the template. resources/list: the caller's mailboxes' event resources (bounded).
- resources/read: JSON `{"mailboxId", "cursor", "nextCursor", "events"}`, events shaped as the REST/tool
  EventOut. Without a query: the mailbox's newest READ_DEFAULT_LIMIT events; `?cursor=N` (and `limit=`,
  1 to MAX_EVENTS): the mailbox's events after N, oldest first — pass `nextCursor` to read on.
- resources/subscribe / resources/unsubscribe (handshake versions, on a session): notifications/resources/
  updated on the session's GET stream within a second of a new event of that mailbox (agent.mcp.push).
  One subscription per (session, mailbox), whatever query the URI carries.
- subscriptions/listen (2026-07-28, no sessions): the same notifications on the listen request's stream.
- Bounds: MAX_SUBSCRIPTIONS_PER_SESSION mailboxes a session, QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT per
  account and process (agent.mcp.push); a subscription or stream whose token is revoked ends.

Gates: the same as qmailing_wait_for_events (the mail plan group and the email:read scope, through
agent.gates.authorize with that operation), then ownership through access_mailbox, whose refusal is
the same for a foreign and a missing mailbox. A resources/read is one call like a REST call: throttled by
agent.mcp.http (HTTP 429), then run through agent.pipeline (the gates, then the daily cap), which writes it
to the request log as "resources/read". Subscribing and listening are not metered (no data is returned; the
notifications carry only the URI, and reading again is a metered call).

Failures are JSON-RPC errors (resources have no isError result): not found and bad input → -32602
(invalid params, as the SDK's ResourceNotFoundError), gate refusals → -32600; the error's data is the
problem object a REST client would get.
"""

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import mcp_types as types
from channels.db import database_sync_to_async
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY, ResourceUpdated, event_to_notification

from mailboxes.selectors import access_mailbox, mailbox_list
from agent.mcp import tools
from agent.mcp.push import GrantWatcher
from agent import gates, pipeline
from core.errors import AppError, Invalid, NotFound, problem_details
from agent.operations import UNTRUSTED_CONTENT, registry
from events.operations import EventOut
from events.selectors import MAX_EVENTS, event_batch, event_latest

logger = logging.getLogger(__name__)

URI_TEMPLATE = "mailbox://{mailbox_id}/events"
SCHEME = "mailbox"
MIME_TYPE = "application/json"
READ_DEFAULT_LIMIT = 50
LIST_LIMIT = 100  # resources/list: at most this many mailboxes' resources
MAX_SUBSCRIPTIONS_PER_SESSION = 100
MAX_LISTEN_URIS = 100
LOG_OPERATION = "resources/read"
GATE_OPERATION = "qmailing_wait_for_events"  # the same plan group and scope as the long-poll of the same log
SUBSCRIPTIONS_STATE = "qmailing.subscriptions"  # key in the SDK connection's per-connection state

TEMPLATE = types.ResourceTemplate(
    name="mailbox_events",
    title="Mailbox events",
    uri_template=URI_TEMPLATE,
    description=("The event log of one mailbox (mail received, sent, delivered, bounced, trashed): "
                 f"{{mailboxId, cursor, nextCursor, events}}, the newest {READ_DEFAULT_LIMIT} by default; add "
                 "?cursor=N to read the events after N (oldest first) and go on with nextCursor. Subscribe to "
                 "be told when it changes. Events carry ids; read the rest with the get tools. "
                 + UNTRUSTED_CONTENT),
    mime_type=MIME_TYPE,
)


def gate_operation():
    return registry()[GATE_OPERATION]


@dataclass(frozen=True)
class Target:
    mailbox_id: uuid.UUID
    cursor: int | None
    limit: int


def parse_uri(uri):
    """The mailbox, cursor and limit a resource URI names; NotFound for a URI that is not one of ours, Invalid
    for a bad query. The same NotFound as a foreign mailbox's, so the answer tells nothing about other accounts."""
    parts = urlsplit(str(uri))
    not_found = NotFound("No such resource: use mailbox://{mailbox_id}/events with the id of one of your mailboxes.")
    if parts.scheme != SCHEME or parts.path != "/events" or parts.fragment:
        raise not_found
    try:
        mailbox_id = uuid.UUID(parts.netloc)
    except ValueError:
        raise not_found from None
    try:
        query = parse_qs(parts.query, strict_parsing=True, max_num_fields=4) if parts.query else {}
    except ValueError:
        raise Invalid("The query of this resource URI is malformed; it takes cursor and limit.", field="uri") from None
    unknown = set(query) - {"cursor", "limit"}
    if unknown or any(len(values) != 1 for values in query.values()):
        raise Invalid(f"This resource takes ?cursor=N and &limit=1..{MAX_EVENTS}, each once.", field="uri")
    cursor = _int_param(query, "cursor", 0, 2**62)
    limit = _int_param(query, "limit", 1, MAX_EVENTS)
    return Target(mailbox_id=mailbox_id, cursor=cursor,
                  limit=limit if limit is not None else READ_DEFAULT_LIMIT)


def _int_param(query, name, low, high):
    if name not in query:
        return None
    value = query[name][0]
    if not value.isdigit() or not low <= int(value) <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}.", field=name)
    return int(value)


def uri_for(mailbox_id):
    return URI_TEMPLATE.format(mailbox_id=mailbox_id)


def as_mcp_error(error, *, instance=""):
    """The JSON-RPC error for an AppError: -32602 for not found and bad input, -32600 for a refusal."""
    code = types.INVALID_PARAMS if error.status in (400, 404, 422) else types.INVALID_REQUEST
    return MCPError(code=code, message=error.detail, data=problem_details(error, instance=instance))


def check_access(actor, uri):
    """The gates for one URI (plan, scope, then ownership): (Target, mailbox), or the AppError."""
    gates.authorize(actor, gate_operation())
    return _owned_target(actor, uri)


def _owned_target(actor, uri):
    target = parse_uri(uri)
    return target, access_mailbox(account=actor.account, mailbox_id=target.mailbox_id, mailbox_ids=actor.mailbox_ids)


def _events_body(actor, uri):
    """The JSON a resources/read of `uri` answers (ownership checked; the gates ran before)."""
    target, mailbox = _owned_target(actor, uri)
    if target.cursor is None:
        batch = event_latest(account_id=actor.account.pk, mailbox_id=mailbox.pk, limit=target.limit)
    else:
        batch = event_batch(account_id=actor.account.pk, after=target.cursor, mailbox_id=mailbox.pk,
                            limit=target.limit)
    return {"mailboxId": str(mailbox.pk), "cursor": batch.after, "nextCursor": batch.next_cursor,
            "events": [EventOut.model_validate(event).model_dump(mode="json") for event in batch.events]}


def read_events(*, actor, uri, started=None):
    """resources/read (sync, ORM) through agent.pipeline: the ReadResourceResult, or MCPError."""
    outcome = pipeline.read(actor, name=LOG_OPERATION, gate=gate_operation(), work=lambda: _events_body(actor, uri),
                            source=pipeline.MCP_RESOURCE, started=started)
    if outcome.error is not None:
        raise as_mcp_error(outcome.error, instance=str(uri)) from None
    return types.ReadResourceResult(contents=[
        types.TextResourceContents(uri=str(uri), mime_type=MIME_TYPE, text=json.dumps(outcome.body))])


def list_event_resources(*, actor):
    """resources/list (sync): the event resources of the caller's mailboxes, none without the gates' consent."""
    try:
        gates.authorize(actor, gate_operation())
    except AppError:
        return []
    return [types.Resource(name=f"events of {mailbox.address}", title=f"Events of {mailbox.address}",
                           uri=uri_for(mailbox.pk),
                           description=TEMPLATE.description, mime_type=MIME_TYPE)
            for mailbox in mailbox_list(account=actor.account, mailbox_ids=actor.mailbox_ids)[:LIST_LIMIT]]


def subscribe_target(*, actor, uri):
    """The (account id, mailbox id) a subscription to `uri` follows, or the AppError (gates and ownership)."""
    target, mailbox = check_access(actor, uri)
    return actor.account.pk, mailbox.pk


_read_events = database_sync_to_async(read_events, thread_sensitive=False)
_list_event_resources = database_sync_to_async(list_event_resources, thread_sensitive=False)
_subscribe_target = database_sync_to_async(subscribe_target, thread_sensitive=False)


def _scope(ctx):
    scope = getattr(ctx.request, "scope", None) or {}
    if scope.get(tools.SCOPE_ACTOR) is None:  # agent.mcp.http authenticates every request before the SDK
        raise MCPError(code=types.INTERNAL_ERROR, message="This request was not authenticated.")
    return scope


async def _checked_target(actor, uri):
    try:
        return await _subscribe_target(actor=actor, uri=uri)
    except AppError as error:
        raise as_mcp_error(error, instance=str(uri)) from None


def _connection(ctx):
    """The SDK's per-connection object (its `state` dict and `exit_stack`, unwound when the session ends).

    mcp 2.3's ServerRequestContext does not expose it (only the unused high-level Context has
    `.connection`): it is the ServerSession's `_connection`. Checked, so an SDK change fails loudly here.
    """
    connection = getattr(ctx.session, "_connection", None)
    if connection is None or not hasattr(connection, "exit_stack") or not hasattr(connection, "state"):
        raise MCPError(code=types.INTERNAL_ERROR, message="Subscriptions are not available on this connection.")
    return connection


class ResourceHandlers:
    """The request handlers of the resource, bound to the process's EventFeeds (agent.mcp.push)."""

    def __init__(self, feeds):
        self.feeds = feeds

    async def list_templates(self, ctx, params):
        return types.ListResourceTemplatesResult(resource_templates=[TEMPLATE])

    async def list_resources(self, ctx, params):
        actor = _scope(ctx)[tools.SCOPE_ACTOR]
        return types.ListResourcesResult(resources=await _list_event_resources(actor=actor))

    async def read(self, ctx, params):
        scope = _scope(ctx)
        return await _read_events(actor=scope[tools.SCOPE_ACTOR], uri=params.uri,
                                  started=scope.get(tools.SCOPE_STARTED))

    # --- Handshake versions: a subscription lives in the session (one sender task per URI).

    async def subscribe(self, ctx, params):
        """One subscription per (session, mailbox), whatever query the URI carries: subscribing again to the
        same mailbox (another ?cursor=N) only changes the URI its notifications name."""
        uri = str(params.uri)
        actor = _scope(ctx)[tools.SCOPE_ACTOR]
        account_id, mailbox_id = await _checked_target(actor, uri)
        mailbox_id = str(mailbox_id)
        connection = _connection(ctx)
        subscriptions = connection.state.get(SUBSCRIPTIONS_STATE)
        if subscriptions is None:
            subscriptions = connection.state[SUBSCRIPTIONS_STATE] = SessionSubscriptions()
            connection.exit_stack.push_async_callback(subscriptions.end)  # runs when the session ends
        if mailbox_id in subscriptions.tasks:
            subscriptions.uris[mailbox_id] = uri
            return types.EmptyResult()
        if len(subscriptions.tasks) >= MAX_SUBSCRIPTIONS_PER_SESSION:
            raise MCPError(code=types.INVALID_REQUEST,
                           message=f"A session can follow at most {MAX_SUBSCRIPTIONS_PER_SESSION} mailboxes; "
                                   "unsubscribe from one first.")
        wake = Wake()
        try:
            stop = await self.feeds.listen(account_id=account_id, mailbox_id=mailbox_id, token_id=actor.token.pk,
                                           callback=wake.set, on_revoked=wake.revoke)
        except AppError as error:  # the account's cap across its sessions
            raise as_mcp_error(error, instance=uri) from None
        if subscriptions.ended or mailbox_id in subscriptions.tasks:  # the session ended, or a concurrent subscribe won
            stop()
            return types.EmptyResult()
        subscriptions.uris[mailbox_id] = uri
        # send_resource_updated goes to the connection's standalone channel (the GET stream), not to this
        # request's stream, so keeping the session after this request has been answered is right.
        subscriptions.tasks[mailbox_id] = self.feeds.spawn(
            _notify_loop(ctx.session, subscriptions, mailbox_id, wake, stop), name=f"mcp-subscription:{mailbox_id}")
        return types.EmptyResult()

    async def unsubscribe(self, ctx, params):
        _scope(ctx)
        subscriptions = _connection(ctx).state.get(SUBSCRIPTIONS_STATE)
        try:
            mailbox_id = str(parse_uri(params.uri).mailbox_id)
        except AppError:
            return types.EmptyResult()  # not a URI anybody could have subscribed to
        task = subscriptions.tasks.pop(mailbox_id, None) if subscriptions is not None else None
        if task is not None:
            subscriptions.uris.pop(mailbox_id, None)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return types.EmptyResult()

    # --- 2026-07-28: subscriptions/listen; the stream is the request's own response.

    async def listen(self, ctx, params):
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(code=types.INVALID_REQUEST, message="subscriptions/listen requires a request id")
        actor = _scope(ctx)[tools.SCOPE_ACTOR]
        requested = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
        if len(requested) > MAX_LISTEN_URIS:
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"A listen stream can follow at most {MAX_LISTEN_URIS} resources.")
        if requested:  # the resources' gates; the tool list is anyone's to follow
            try:
                await database_sync_to_async(gates.authorize, thread_sensitive=False)(actor, gate_operation())
            except AppError as error:
                raise as_mcp_error(error) from None
        honored, targets = [], []
        for uri in requested:
            try:
                targets.append((uri, await _subscribe_target(actor=actor, uri=uri)))
                honored.append(uri)
            except AppError:
                continue  # not ours (or not anyone's): not honored, and not told apart
        meta = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        changed = Wake()
        pending = set()
        stops = []
        tool_list = _ListenedToolList(actor, changed) if params.notifications.tools_list_changed else None

        uris_of = {}  # one listener per mailbox, however many of its URIs the stream names
        for uri, target in targets:
            uris_of.setdefault(target, []).append(uri)

        def on_event(uris):
            def mark():
                pending.update(uris)
                changed.set()
            return mark

        try:
            for (account_id, mailbox_id), uris in uris_of.items():
                try:
                    stops.append(await self.feeds.listen(account_id=account_id, mailbox_id=mailbox_id,
                                                         token_id=actor.token.pk, callback=on_event(uris),
                                                         on_revoked=changed.revoke))
                except AppError as error:  # the account's cap across its sessions and streams
                    raise as_mcp_error(error) from None
            if tool_list is not None:
                stops.append(await self.feeds.watch_grants(account_id=actor.account.pk, watcher=tool_list.watcher()))
            # The resource URIs and the tool list are honored: the resource list never changes at run time.
            filter_ = types.SubscriptionFilter(resource_subscriptions=honored or None,
                                               tools_list_changed=True if tool_list is not None else None)
            await ctx.session.send_notification(
                types.SubscriptionsAcknowledgedNotification(
                    params=types.SubscriptionsAcknowledgedNotificationParams(notifications=filter_, _meta=meta)),
                related_request_id=subscription_id)
            if not uris_of and tool_list is None:  # nothing honoured, nothing will ever be told: the stream ends
                return types.SubscriptionsListenResult(_meta=meta)
            while True:  # until the client closes the stream (which cancels this handler)
                await changed.wait()
                if changed.revoked:  # revoked or expired since it listened: the stream ends, nothing more is told
                    return types.SubscriptionsListenResult(_meta=meta)
                if tool_list is not None and tool_list.changed:
                    tool_list.changed = False
                    await ctx.session.send_notification(
                        types.ToolListChangedNotification(params=types.NotificationParams(_meta=meta)),
                        related_request_id=subscription_id)
                uris = sorted(pending)
                pending.clear()
                for uri in uris:
                    await ctx.session.send_notification(event_to_notification(ResourceUpdated(uri=uri), meta),
                                                        related_request_id=subscription_id)
        finally:
            for stop in stops:
                stop()


class _ListenedToolList:
    """A listen stream's tools_list_changed (2026-07-28): the tool names its token may call when it listened,
    and a grant watcher (agent.mcp.push) that wakes the stream once they differ."""

    def __init__(self, actor, wake):
        self.actor = actor
        self.wake = wake
        self.names = frozenset(operation.name for operation in gates.visible_operations(actor))
        self.changed = False

    def watcher(self):
        return GrantWatcher(token_id=self.actor.token.pk, application_id=self.actor.token.application_id,
                            user_id=self.actor.user.pk, callback=self._grants)

    def _grants(self, names):
        if names is not None and names != self.names:
            self.names = names
            self.changed = True
            self.wake.set()


class Wake:
    """What a follower (agent.mcp.push) tells a subscription: set() when its mailbox moved, revoke() when its
    token no longer admits calls (the follower checked every listener's token in one query before telling)."""

    def __init__(self):
        self._event = asyncio.Event()
        self.revoked = False

    def set(self):
        self._event.set()

    def revoke(self):
        self.revoked = True
        self._event.set()

    async def wait(self):
        await self._event.wait()
        self._event.clear()


async def _notify_loop(session, subscriptions, mailbox_id, wake, stop):
    """One subscription's sender: after each wake-up, one notifications/resources/updated (bursts coalesce),
    naming the URI the session last subscribed to for this mailbox. It ends when the token is revoked (or
    expires): a revoked client learns nothing more, not even that mail arrived."""
    try:
        while True:
            await wake.wait()
            if wake.revoked:
                return
            try:
                await session.send_resource_updated(subscriptions.uris.get(mailbox_id) or uri_for(mailbox_id))
            except Exception:  # the stream is gone or broken: the client reconnects or the session ends
                logger.debug("Could not send resources/updated for mailbox %s", mailbox_id, exc_info=True)
    finally:
        stop()
        if subscriptions.tasks.get(mailbox_id) is asyncio.current_task():
            subscriptions.tasks.pop(mailbox_id, None)
            subscriptions.uris.pop(mailbox_id, None)


class SessionSubscriptions:
    """A session's subscriptions (in the SDK connection's state): mailbox id -> its sender task, and the URI
    its notifications name."""

    def __init__(self):
        self.tasks = {}
        self.uris = {}
        self.ended = False

    async def end(self):
        """The session ended (the SDK unwinds the connection's exit stack): cancel every sender task."""
        self.ended = True
        tasks = list(self.tasks.values())
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
