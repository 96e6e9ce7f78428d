"""Settings → Webhooks (mounted at /settings/webhooks/ by qmailing/urls.py)."""

from django.urls import path

from webhooks import web

app_name = "webhooks"
urlpatterns = [
    path("", web.webhook_index, name="index"),
    path("new/", web.webhook_register_view, name="register"),
    path("<uuid:webhook_id>/", web.webhook_detail, name="detail"),
    path("<uuid:webhook_id>/enable/", web.webhook_enable, name="enable"),
    path("<uuid:webhook_id>/rotate/", web.webhook_rotate, name="rotate"),
    path("<uuid:webhook_id>/revoke/", web.webhook_revoke_view, name="revoke"),
    path("<uuid:webhook_id>/redeliver-failed/", web.webhook_redeliver_failed, name="redeliver-failed"),
    path("<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/", web.webhook_redeliver, name="redeliver"),
]
