"""The HTTP side of the MCP server at /mcp: the ASGI app in front of the SDK's streamable HTTP transport.

Per HTTP request, before the SDK sees it:
1. Host and Origin are checked, each against an exact list (DNS-rebinding protection; the SDK checks again)
   — 421 / 403. First, so the 401's resource_metadata URL below is only ever built from a host we serve. A
   request whose Origin passed (one of QMAILING_MCP_ALLOWED_ORIGINS) gets CORS: its OPTIONS preflight is
   answered 204 here, before authentication, and every response (the 401 too) carries
   Access-Control-Allow-Origin (that origin, never `*`, never credentials), Access-Control-Expose-Headers and
   Vary: Origin. Other origins get the 403; a request without Origin (not a browser) gets no CORS headers.
2. A GET without Mcp-Session-Id is answered 405: only a session has a server-to-client stream.
3. The token is authenticated (agent.gates.authenticate, every request; agent.token_cache drops a revoked
   token in every process as it is revoked, so it fails on its very next request) — 401 with
   `WWW-Authenticate: Bearer …, resource_metadata="…", scope="…"`.
   Past QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE such refusals from one client IP, a 429 instead.
4. A POST body is read (bounded) and parsed once with core.jsonbody: JSON of any bad shape (depth,
   numbers, encoding) is a JSON-RPC parse error with HTTP 400, never a 500.
5. `initialize` is throttled per token (QMAILING_MCP_INITIALIZE_PER_MINUTE, 429); the session it opens is
   bounded per token and per account (agent.mcp.sessions: evict the oldest idle one, or 429).
6. A `tools/call` of a known tool, and a `resources/read`, is throttled (agent.gates.throttle: the token's
   minute; an HTTP 429 with Retry-After). The account's daily cap is charged by agent.pipeline once the call
   passed its plan and scope gates and its arguments are valid, and is answered there (an isError tool
   result; a JSON-RPC error for a read). Only calls that return data count, as REST counts only operation
   calls: initialize, the list methods, ping, resources/subscribe and subscriptions/listen never eat a FREE
   account's daily requests, nor does a call refused before its operation runs.
The Actor rides in the ASGI scope to the tool handler (agent.mcp.tools), which sees the same request.

The resource's push (agent.mcp.push.EventFeeds) belongs to the endpoint too: its tasks are cancelled
when the runtime stops, after the sessions (whose exit stacks end their own subscriptions).

The SDK's session manager needs a running task group. `SessionManagerRuntime` enters it once per process:
from the ASGI lifespan where the server sends one (uvicorn), otherwise lazily on the first MCP request
(daphne sends no lifespan), and leaves it on shutdown (lifespan.shutdown, or the Twisted reactor's
shutdown under daphne) so open sessions end cleanly.
"""

import asyncio
import functools
import json
import logging
import sys
import time
from contextlib import nullcontext

import mcp_types as types
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from starlette.requests import Request
from starlette.responses import Response

from agent.mcp import resources, tools
from agent.mcp.push import EventFeeds
from agent.mcp.server import allowed_hosts, allowed_origins, build_server, build_session_manager, normalized_host
from agent.mcp.sessions import opening
from agent import gates, pipeline
from core import ratelimit
from core.errors import RateLimited, TooLarge, Unauthenticated, problem_details
from core.jsonbody import MalformedJson, json_loads_strict
from agent.operations import registry

logger = logging.getLogger(__name__)

RESOURCE_PATH = "/mcp"
MCP_PATHS = ("/mcp", "/mcp/")
PROBLEM_CONTENT_TYPE = "application/problem+json"


class SessionManagerRuntime:
    """Keeps one SDK session manager running in this process's event loop, started once, stopped once."""

    def __init__(self, server, feeds=None):
        self.server = server
        self.feeds = feeds
        self.manager = None
        self._loop = None
        self._task = None
        self._ready = None
        self._stop = None

    async def start(self):
        """The running session manager, starting it on first use (idempotent; safe for concurrent callers)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._loop is not loop or self._task.done():
            # No await between the check and the assignment: concurrent first requests start it once.
            self._loop = loop
            self.manager = build_session_manager(self.server)  # a manager runs once; a restart needs a new one
            self._ready, self._stop = asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._run(self.manager, self._ready, self._stop), name="mcp-session-manager")
            _stop_with_twisted_reactor(self)
        await self._ready.wait()
        return self.manager

    @staticmethod
    async def _run(manager, ready, stop):
        try:
            async with manager.run():
                ready.set()
                await stop.wait()
        except Exception:
            logger.exception("The MCP session manager stopped with an error")
        finally:
            ready.set()  # never leave a request waiting; without a task group the SDK answers 500

    async def stop(self):
        """End every session and the manager's task group (the process is shutting down)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._stop.set()
            await task
            logger.info("MCP session manager stopped")
        if self.feeds is not None:
            await self.feeds.close()


def _stop_with_twisted_reactor(runtime):
    """Under daphne (no ASGI lifespan), stop the runtime before the Twisted reactor shuts down."""
    reactor = sys.modules.get("twisted.internet.reactor")  # never import it: that would install a reactor
    if reactor is None or not getattr(reactor, "running", False):
        return
    from twisted.internet.defer import Deferred

    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: Deferred.fromFuture(asyncio.ensure_future(runtime.stop())))


# --- Responses sent before the SDK is involved.

async def _send_json(send, status, body, *, content_type="application/json", headers=None):
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(key.lower().encode("latin-1"), str(value).encode("latin-1"))
                    for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_problem(send, error, *, headers=None):
    await _send_json(send, error.status, problem_details(error, instance=RESOURCE_PATH),
                     content_type=PROBLEM_CONTENT_TYPE, headers={**(headers or {}), **error.headers})


def request_origin(scope, request):
    """scheme://host of the request, the scheme from the TLS proxy when settings trust it (as Django does)."""
    scheme = scope.get("scheme", "http")
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header:
        name, value = proxy_header
        forwarded = request.headers.get(name.removeprefix("HTTP_").replace("_", "-").lower(), "")
        scheme = "https" if forwarded.split(",")[0].strip() == value else scheme
    return f"{scheme}://{request.headers.get('host', '')}"


def _principal(actor):
    """Who a session belongs to, for the SDK's check that a session is used only by whoever opened it.

    The client (the token's application) and the person, not the token itself, so an OAuth client keeps
    its session across a token refresh. No secret in it: the token's value never leaves the gates.
    """
    return AuthenticatedUser(AccessToken(token="", client_id=f"application:{actor.token.application_id}",
                                         scopes=sorted(actor.scopes), subject=str(actor.user.pk)))


def _metered_call(message):
    """The request-log name of the metered call in the parsed JSON-RPC `message`: a tools/call of a known tool
    (its operation's name) or a resources/read; None for anything else (other methods, notifications)."""
    if not isinstance(message, dict):
        return None
    if message.get("method") == resources.LOG_OPERATION:
        return resources.LOG_OPERATION
    if message.get("method") != "tools/call":
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    operation = registry().get(name) if isinstance(name, str) else None
    return operation.name if operation is not None else None


def _method(message):
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


# A session counts as used (agent.mcp.sessions) once it does what an agent does with one.
USING_METHODS = {"tools/call", "resources/read", "resources/subscribe", "subscriptions/listen"}


async def _read_body(receive, limit):
    """The whole request body, or None past `limit` bytes; plus a receive() that replays it to the SDK."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the SDK sees an empty body and answers it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return b"".join(chunks), replay


def _throttle_or_log(actor, log_name, headers, started):
    """throttle() for one call that returns data; a throttled call (HTTP 429) is logged here, as REST logs its 429s."""
    try:
        gates.throttle(actor, headers=headers)
    except RateLimited as error:
        pipeline.record(actor=actor, name=log_name, status=error.status, started=started)
        raise


_authenticate = database_sync_to_async(gates.authenticate, thread_sensitive=False)
_call_throttle = database_sync_to_async(_throttle_or_log, thread_sensitive=False)


class McpEndpoint:
    """The ASGI app for /mcp: the checks above, then the SDK's streamable HTTP transport."""

    def __init__(self):
        self.feeds = EventFeeds()
        self.server = build_server(self.feeds)
        self.runtime = SessionManagerRuntime(self.server, self.feeds)

    async def __call__(self, scope, receive, send):
        started = time.perf_counter()
        request = Request(scope)
        refused = _host_or_origin_refused(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        scope = _with_normalized_host(scope)
        request = Request(scope)
        origin_header = request.headers.get("origin")
        if origin_header:  # it passed the Origin check above: one of QMAILING_MCP_ALLOWED_ORIGINS
            if scope["method"] == "OPTIONS":
                await _send_preflight(send, origin_header)
                return
            send = _with_cors(send, origin_header)
        session_id = request.headers.get(MCP_SESSION_ID_HEADER)
        if scope["method"] == "GET" and session_id is None:
            # Without a session there is no server-to-client stream to open (a session-less GET would
            # otherwise wait forever on some SDK paths).
            await _send_json(send, 405, {"error": "GET needs an Mcp-Session-Id; send requests with POST."},
                             headers={"Allow": "POST"})
            return

        origin = request_origin(scope, request)
        try:
            # A token in the process's cache is checked here, on the loop (no query); only a miss takes a thread.
            actor = gates.authenticate(request.headers.get("authorization"), origin=origin, cached_only=True)
            if actor is None:
                actor = await _authenticate(request.headers.get("authorization"), origin=origin)
        except Unauthenticated as error:
            throttled = await _unauthenticated_throttle(scope)
            if throttled is not None:
                await _send_problem(send, throttled)
                return
            error.headers["WWW-Authenticate"] = gates.bearer_challenge(
                error.headers["WWW-Authenticate"], origin=origin, resource_path=RESOURCE_PATH)
            await _send_problem(send, error)
            return

        scope = {**scope, tools.SCOPE_ACTOR: actor, tools.SCOPE_STARTED: started, "user": _principal(actor)}
        rate_headers = {}
        method = None
        if scope["method"] == "POST":
            body, receive = await _read_body(receive, settings.QMAILING_API_MAX_BODY_BYTES)
            if body is None:
                await _send_problem(send, TooLarge("The request body is above the size the MCP server accepts.",
                                                   limit=settings.QMAILING_API_MAX_BODY_BYTES))
                return
            try:
                message = json_loads_strict(body)
            except MalformedJson as exc:
                await _send_json(send, 400, {"jsonrpc": "2.0", "id": None,
                                             "error": {"code": types.PARSE_ERROR, "message": f"Parse error: {exc}"}})
                return
            method = _method(message)
            if method == "initialize":
                try:
                    await _initialize_throttle(actor)
                except RateLimited as error:
                    await _send_problem(send, error)
                    return
            log_name = _metered_call(message)
            if log_name is not None:
                try:
                    await _call_throttle(actor, log_name, rate_headers, started)
                except RateLimited as error:
                    await _send_problem(send, error, headers=rate_headers)
                    return

        manager = await self.runtime.start()
        try:
            # Only an initialize opens a session: any other session-less POST must not evict one to make room.
            with opening(actor) if method == "initialize" else nullcontext(), \
                    manager.serving(session_id, used=method in USING_METHODS):
                await manager.handle_request(scope, receive, _with_headers(send, rate_headers))
        except RateLimited as error:  # a session cap (agent.mcp.sessions), raised before anything was sent
            await _send_problem(send, error)


def _host_or_origin_refused(request):
    """421 for a Host header that is not exactly one we serve, 403 for a browser Origin that is not allowed;
    None when both pass. Exact matches only (agent.mcp.server.allowed_hosts), so nothing a client made up
    ever reaches the 401's resource_metadata URL."""
    host = normalized_host(request.headers.get("host"))
    if host not in allowed_hosts():
        logger.warning("Refused an MCP request for Host %r", host[:100])
        return Response("Invalid Host header", status_code=421)
    origin = request.headers.get("origin")
    if origin and origin.lower() not in allowed_origins():
        logger.warning("Refused an MCP request from Origin %r", origin[:100])
        return Response("Invalid Origin header", status_code=403)
    return None


def _with_normalized_host(scope):
    """The scope with Host (and Origin) as they were matched, so the SDK's own exact, case-sensitive check and
    the 401's resource_metadata see the same value ours accepted."""
    headers = []
    for key, value in scope["headers"]:
        if key == b"host":
            value = normalized_host(value.decode("latin-1")).encode("latin-1")
        elif key == b"origin":
            value = value.lower()
        headers.append((key, value))
    return {**scope, "headers": headers}


def _throttle(key, limit, detail):
    decision = ratelimit.hit(key, limit=limit, window_seconds=60)
    if decision.allowed:
        return None
    return RateLimited(detail.format(limit=limit, wait=decision.retry_after), retry_after=decision.retry_after)


@functools.partial(sync_to_async, thread_sensitive=False)
def _unauthenticated_throttle(scope):
    """A RateLimited once this client IP made QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE requests without a valid token."""
    return _throttle(f"mcp:unauthenticated:ip:{ratelimit.client_ip_of_scope(scope)}",
                     settings.QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE,
                     "This address sent more than {limit} requests without a valid token in a minute. "
                     "Wait {wait} seconds, then send your token as `Authorization: Bearer qm_live_…`.")


@functools.partial(sync_to_async, thread_sensitive=False)
def _initialize_throttle(actor):
    """Raise RateLimited past QMAILING_MCP_INITIALIZE_PER_MINUTE initialize requests of this token in a minute."""
    error = _throttle(f"mcp:initialize:token:{actor.token.token_checksum[:32]}",
                      settings.QMAILING_MCP_INITIALIZE_PER_MINUTE,
                      "This token opened more than {limit} MCP sessions in a minute. Wait {wait} seconds, and "
                      "keep using the session you have (its Mcp-Session-Id) instead of initializing again.")
    if error is not None:
        raise error


CORS_ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
# Mcp-Method and Mcp-Name: the routing headers of 2026-07-28 requests.
CORS_ALLOW_HEADERS = ("authorization, content-type, mcp-protocol-version, mcp-session-id, last-event-id, mcp-method, "
                      "mcp-name")
CORS_EXPOSE_HEADERS = ("mcp-session-id, www-authenticate, retry-after, x-ratelimit-limit, x-ratelimit-remaining, "
                       "x-ratelimit-reset")
CORS_MAX_AGE = 600


async def _send_preflight(send, origin):
    """204 to a browser's CORS preflight from an allowed origin (no token needed: preflights carry none)."""
    headers = [(b"access-control-allow-origin", origin.encode("latin-1")),
               (b"access-control-allow-methods", CORS_ALLOW_METHODS.encode()),
               (b"access-control-allow-headers", CORS_ALLOW_HEADERS.encode()),
               (b"access-control-max-age", str(CORS_MAX_AGE).encode()),
               (b"vary", b"Origin"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send, origin):
    """`send`, adding the CORS response headers for an allowed `origin` to the response start."""
    extra = [(b"access-control-allow-origin", origin.encode("latin-1")),
             (b"access-control-expose-headers", CORS_EXPOSE_HEADERS.encode()),
             (b"vary", b"Origin")]

    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def _with_headers(send, headers):
    """`send`, adding `headers` (X-RateLimit-*) to the response start."""
    if not headers:
        return send
    extra = [(key.lower().encode("latin-1"), str(value).encode("latin-1")) for key, value in headers.items()]

    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


class McpMount:
    """The http scope: /mcp (and /mcp/) to the MCP endpoint, every other path to Django."""

    def __init__(self, django_app, endpoint):
        self.django_app = django_app
        self.endpoint = endpoint

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in MCP_PATHS:
            await self.endpoint(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)


class Lifespan:
    """The ASGI lifespan scope (uvicorn; daphne sends none): start the MCP runtime, stop it on shutdown."""

    def __init__(self, runtime):
        self.runtime = runtime

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:
                    logger.exception("Could not start the MCP session manager")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
