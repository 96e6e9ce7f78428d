"""The MCP server: the SDK's low-level `Server` with tools/list and tools/call generated from the registry.

The low-level server, rather than MCPServer's decorators, because MCPServer derives a tool's schemas from a
function signature, while ours already exist as the operation's pydantic models (agent.mcp.tools). The
handlers read the Actor that agent.mcp.http authenticated for this HTTP request from the request's ASGI
scope (`ctx.request.scope`), so a tool call never re-authenticates.

The resource `mailbox://{mailbox_id}/events` (agent.mcp.resources) is served by the same server:
resources/templates/list, resources/list, resources/read, resources/subscribe and resources/unsubscribe
(handshake versions) and subscriptions/listen (2026-07-28). Registering resources/list and
resources/subscribe (or subscriptions/listen) is what makes the SDK advertise `resources: {subscribe: true}`.
"""

import logging
from urllib.parse import urlsplit

import mcp_types as types
from channels.db import database_sync_to_async
from django.conf import settings
from mcp.server.lowlevel.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from agent.mcp import resources, resume, tools
from agent.mcp.push import GrantWatcher
from agent.mcp.sessions import BoundedSessionManager
from agent.operations import UNTRUSTED_CONTENT_WARNING

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "QMailing is the user's hosted inbox. Start with qmailing_list_mailboxes; the other tools take ids from it. "
    f"{UNTRUSTED_CONTENT_WARNING} "
    "A tool's result always holds every field its output schema names (null when empty). "
    "A result with isError is text: its first line tells the user what to do (upgrade, a missing scope, the "
    "daily cap), its second is the problem object as JSON (code, errors per field, downloadUrl, retryAfter, ...). "
    "The tools listed are those this token's scopes, its mailbox limit and the account's plan allow; the list "
    "changes with them (notifications/tools/list_changed).")

TOOL_LIST_STATE = "qmailing.tool_list"  # key in the SDK connection's per-connection state


def _actor(ctx):
    scope = getattr(ctx.request, "scope", None) or {}
    actor = scope.get(tools.SCOPE_ACTOR)
    if actor is None:  # only agent.mcp.http serves this server, and it authenticates every request
        raise MCPError(code=types.INTERNAL_ERROR, message="This request was not authenticated.")
    return actor, scope


# thread_sensitive=False: tool calls of different requests run in parallel threads, each with its own
# database connection, opened and closed around the call as Django does around a request.
_run_tool = database_sync_to_async(tools.run_tool, thread_sensitive=False)


class ToolHandlers:
    """tools/list and tools/call, bound to the process's EventFeeds (agent.mcp.push) for list_changed."""

    def __init__(self, feeds):
        self.feeds = feeds

    async def list_tools(self, ctx, params):
        """The tools this token is shown (agent.gates.visible_operations). On a session (handshake versions), the
        session is also told when that set changes, until it ends (SessionToolList)."""
        actor, _ = _actor(ctx)
        shown = tools.tool_definitions(actor)
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            await self._watch(ctx, actor, frozenset(tool.name for tool in shown))
        return types.ListToolsResult(tools=shown)

    async def _watch(self, ctx, actor, names):
        connection = getattr(ctx.session, "_connection", None)  # as agent.mcp.resources._connection reads it
        if connection is None or not hasattr(connection, "exit_stack") or not hasattr(connection, "state"):
            return  # no session to tell later (nothing to watch for)
        tool_list = connection.state.get(TOOL_LIST_STATE)
        if tool_list is None:
            tool_list = connection.state[TOOL_LIST_STATE] = SessionToolList(ctx.session, self.feeds)
            connection.exit_stack.push_async_callback(tool_list.end)  # runs when the session ends
        await tool_list.shown(actor, names)

    async def _seen(self, ctx, actor):
        """A session that listed its tools and now calls with another token (a new consent, a refresh): told
        at once if that token is shown other tools, and watched with it from here on."""
        connection = getattr(ctx.session, "_connection", None)
        tool_list = getattr(connection, "state", {}).get(TOOL_LIST_STATE) if connection is not None else None
        if tool_list is not None and tool_list.token_id != actor.token.pk:
            await tool_list.shown(actor, tool_list.names)
            tool_list.report(tools.tool_names(actor))

    async def call_tool(self, ctx, params):
        """Any tool by name, shown to this token or not: a hidden one answers the gate's refusal (plan or scope)."""
        operation = tools.operation_for(params.name)
        actor, scope = _actor(ctx)
        await self._seen(ctx, actor)
        # An operation that mostly waits (wait_for_events) is awaited on the event loop: a thread per waiting
        # agent would soon take every thread of the default executor and stall every other tool call.
        run_tool = tools.run_tool_async if operation.handler_async is not None else _run_tool
        return await run_tool(operation=operation, actor=actor, arguments=params.arguments or {},
                              started=scope.get(tools.SCOPE_STARTED))


class SessionToolList:
    """What one session was shown by tools/list, and the grant watcher (agent.mcp.push) that tells it, with
    notifications/tools/list_changed on its GET stream, once the names its token may call differ from that."""

    def __init__(self, session, feeds):
        self.session = session
        self.feeds = feeds
        self.names = None
        self.token_id = None
        self._stop = None
        self.ended = False

    async def shown(self, actor, names):
        self.names = names
        if self.token_id == actor.token.pk or self.ended:
            return
        if self._stop is not None:  # the session goes on with another token (a refresh): watch that one
            self._stop()
        self.token_id = actor.token.pk
        watcher = GrantWatcher(token_id=actor.token.pk, application_id=actor.token.application_id,
                               user_id=actor.user.pk, callback=self.report)
        self._stop = await self.feeds.watch_grants(account_id=actor.account.pk, watcher=watcher)
        if self.ended:
            self._stop()

    def report(self, names):
        """The names the token may call now (the follower's report, on the event loop), or None (no live token)."""
        if names is None or self.names is None or names == self.names or self.ended:
            return
        self.names = names  # told once per change; the client's next tools/list says what it was shown
        self.feeds.spawn(self._tell(), name="mcp-tools-list-changed")

    async def _tell(self):
        try:
            await self.session.send_tool_list_changed()
        except Exception:  # the stream is gone or broken: the client reconnects or the session ends
            logger.debug("Could not send tools/list_changed", exc_info=True)

    async def end(self):
        self.ended = True
        if self._stop is not None:
            self._stop()


class QMailingServer(Server):
    def get_capabilities(self, *args, **kwargs):
        """The SDK's capabilities, with tools.listChanged (the tool list follows the token's scopes and the
        account's plan: ToolHandlers tells sessions, and subscriptions/listen streams that ask, when it changes)
        and without resources.listChanged (on 2026-07-28 the SDK sets it whenever subscriptions/listen is
        served, but the resource list never changes at run time, so this server never publishes that event)."""
        capabilities = super().get_capabilities(*args, **kwargs)
        update = {}
        if capabilities.tools is not None:
            update["tools"] = capabilities.tools.model_copy(update={"list_changed": True})
        if capabilities.resources is not None:
            update["resources"] = capabilities.resources.model_copy(update={"list_changed": False})
        return capabilities.model_copy(update=update)


def build_server(feeds):
    """The server; `feeds` (agent.mcp.push.EventFeeds) carries the resource's notifications."""
    handlers = resources.ResourceHandlers(feeds)
    tool_handlers = ToolHandlers(feeds)
    return QMailingServer(
        "qmailing",
        title="QMailing",
        version="1",
        instructions=INSTRUCTIONS,
        website_url=settings.QMAILING_BASE_URL,
        get_tool_input_schema=tools.tool_input_schema,
        on_list_tools=tool_handlers.list_tools,
        on_call_tool=tool_handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_templates,
        on_read_resource=handlers.read,
        on_subscribe_resource=handlers.subscribe,
        on_unsubscribe_resource=handlers.unsubscribe,
        on_subscriptions_listen=handlers.listen,
    )


def allowed_hosts():
    """Every Host header value /mcp answers, exactly: each allowed host name bare and with each allowed port.

    The names are ALLOWED_HOSTS' and the base URL's (no wildcard: rebinding protection would mean nothing);
    the ports are the base URL's and QMAILING_MCP_ALLOWED_PORTS. Nothing else passes: not another port, not
    a userinfo (`127.0.0.1:1@evil.test`), not a path.
    """
    names, ports = set(), {str(port) for port in settings.QMAILING_MCP_ALLOWED_PORTS}
    base = urlsplit(settings.QMAILING_BASE_URL)
    ports.add(str(base.port or DEFAULT_PORTS.get(base.scheme, "")))
    ports.discard("")
    for host in [*settings.ALLOWED_HOSTS, _host_of(settings.QMAILING_BASE_URL)]:
        if host in ("*", "") or host.startswith("*"):
            continue
        names.add(host.lstrip(".").lower())  # ".example.com" admits the domain itself here, not its subdomains
    return frozenset({*names, *(f"{name}:{port}" for name in names for port in ports)})


DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalized_host(host):
    """A Host header value as it is compared: lowercase, without the one trailing dot a fully qualified name may
    carry (`Mail.Example.com.:443` is `mail.example.com:443`)."""
    host = (host or "").strip().lower()
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon or not port.isdigit():
        name, colon, port = host, "", ""
    return f"{name.removesuffix('.')}{colon}{port}"


def allowed_origins():
    """Every Origin header value a browser may send to /mcp, exactly, lowercase: QMAILING_MCP_ALLOWED_ORIGINS
    (patterns such as `http://localhost:*` are not honoured). A loopback origin stands for the same scheme and
    port on each loopback name that is an allowed host (`localhost`, `127.0.0.1`, `[::1]`), as the Host check
    admits them all: a page on `http://[::1]:8000` is the same local server as one on `http://localhost:8000`."""
    configured = {origin.rstrip("/").lower() for origin in settings.QMAILING_MCP_ALLOWED_ORIGINS
                  if not origin.endswith(":*")}
    loopback_hosts = LOOPBACK_NAMES & {host.lower() for host in settings.ALLOWED_HOSTS}
    aliases = set()
    for origin in configured:
        parts = urlsplit(origin)
        if _host_of(origin) in LOOPBACK_NAMES:
            port = f":{parts.port}" if parts.port else ""
            aliases.update(f"{parts.scheme}://{name}{port}" for name in loopback_hosts)
    return frozenset(configured | aliases)


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def transport_security():
    """DNS-rebinding protection for the SDK (always on), with the exact lists agent.mcp.http checks first."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=sorted(allowed_hosts()),
                                     allowed_origins=sorted(allowed_origins()))


def _host_of(url):
    host = urlsplit(url).hostname or ""
    return f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed in a Host header


def build_session_manager(server):
    """A new session manager for `server` (one per run: the SDK's manager cannot be started twice), with the
    per-token and per-account bounds of agent.mcp.sessions."""
    return BoundedSessionManager(
        app=server,
        stateless=False,  # stateful sessions for the handshake versions; 2026-07-28 is session-less anyway
        security_settings=transport_security(),
        retry_interval=resume.RETRY_MILLISECONDS,  # with each session's event store: SSE priming events (SEP-1699)
        max_request_body_size=settings.QMAILING_API_MAX_BODY_BYTES,  # send_email's attachments, as REST
        session_idle_timeout=settings.QMAILING_MCP_SESSION_IDLE_SECONDS,
        max_sessions=settings.QMAILING_MCP_MAX_SESSIONS,
    )
