"""Websocket routes: the dashboard's live mail pages (mailboxes.views.live)."""

from mailboxes.views.live import websocket_urls

websocket_urlpatterns = [*websocket_urls]
