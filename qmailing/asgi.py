"""ASGI entry served by daphne (or uvicorn): HTTP (Django, and the MCP server at /mcp), websockets (channels)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")
django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402

from agent.mcp.http import Lifespan, McpEndpoint, McpMount  # noqa: E402
from core.bodylimit import BodyLimit  # noqa: E402
from qmailing.routing import websocket_urlpatterns  # noqa: E402

mcp_endpoint = McpEndpoint()  # one per process: it owns the MCP sessions (agent.mcp.http)

application = ProtocolTypeRouter({
    "http": McpMount(BodyLimit(django_http), mcp_endpoint),  # every body Django reads is bounded (core.bodylimit)
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    # uvicorn starts and stops the MCP session manager through the lifespan; daphne sends none, so the
    # first MCP request starts it and the reactor's shutdown stops it.
    "lifespan": Lifespan(mcp_endpoint.runtime),
})
