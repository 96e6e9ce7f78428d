"""The MCP benchmark's ASGI app (bench/mcp.py): the product's app, plus a bare SDK server at /bare-mcp.

`/bare-mcp` is the SDK's own MCPServer with one trivial tool (`bare_list`, an async function returning a
small constant dict) and its own `streamable_http_app()`: no token, gates, ORM or request log. It is the
baseline the product's /mcp is compared against, on the same daphne process. Every other path goes to
`qmailing.asgi.application`, unchanged. Only the benchmark mounts this module, never `run_all`.

Daphne sends no ASGI lifespan, so the Starlette app's lifespan (which runs the session manager) never runs:
as agent.mcp.http.SessionManagerRuntime does for /mcp, the first /bare-mcp request starts
`session_manager.run()` in a task of the running loop and every request waits until it is running.
"""

import asyncio
import logging
import sys

from qmailing.asgi import application as product_application  # sets Django up first
from qmailing.asgi import mcp_endpoint  # noqa: E402, F401  (bench/mcp.py stops its runtime after in-process calls)
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.transport_security import TransportSecuritySettings  # noqa: E402

logger = logging.getLogger(__name__)

BARE_PATH = "/bare-mcp"
BARE_TOOL = "bare_list"
BARE_RESULT = {"items": [{"id": 1, "address": "bench@bench.example"}], "next_cursor": None}

bare = MCPServer("bare")


@bare.tool(name=BARE_TOOL, description="A constant, for the benchmark's baseline.")
async def bare_list() -> dict:
    return BARE_RESULT


bare_app = bare.streamable_http_app(
    streamable_http_path=BARE_PATH,
    # The loopback hosts the benchmark calls from (what the SDK enables by default for host 127.0.0.1).
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                                 allowed_hosts=["127.0.0.1:*", "localhost:*"],
                                                 allowed_origins=["http://127.0.0.1:*"]),
)


class BareRuntime:
    """Runs the bare app's session manager in this process's loop, started by the first request."""

    def __init__(self):
        self._task = None
        self._ready = None
        self._stop = None

    async def start(self):
        if self._task is None:  # no await between the check and the assignment: started once
            self._ready, self._stop = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bare-session-manager")
            reactor = sys.modules.get("twisted.internet.reactor")  # daphne's; stop before it shuts down
            if reactor is not None and getattr(reactor, "running", False):
                from twisted.internet.defer import Deferred

                reactor.addSystemEventTrigger("before", "shutdown",
                                              lambda: Deferred.fromFuture(asyncio.ensure_future(self.stop())))
        await self._ready.wait()

    async def _run(self):
        try:
            async with bare.session_manager.run():
                self._ready.set()
                await self._stop.wait()
        except Exception:
            logger.exception("The bare MCP session manager stopped with an error")
        finally:
            self._ready.set()

    async def stop(self):
        if self._task is not None and not self._task.done():
            self._stop.set()
            await self._task


bare_runtime = BareRuntime()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] in (BARE_PATH, BARE_PATH + "/"):
        await bare_runtime.start()
        await bare_app(scope, receive, send)
    else:
        await product_application(scope, receive, send)
