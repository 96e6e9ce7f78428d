"""Websocket routes (the dashboard's live updates) — filled in by the dashboard work."""

websocket_urlpatterns = []
