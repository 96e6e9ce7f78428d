"""Settings → Webhooks, at /settings/webhooks/ (included at the root by qmailing/urls.py)."""

from django.urls import include, path

from webhooks import views

app_name = "webhooks"
pages = [
    path("", views.webhook_index, name="index"),
    path("new/", views.webhook_register_view, name="register"),
    path("<uuid:webhook_id>/", views.webhook_detail, name="detail"),
    path("<uuid:webhook_id>/enable/", views.webhook_enable, name="enable"),
    path("<uuid:webhook_id>/rotate/", views.webhook_rotate, name="rotate"),
    path("<uuid:webhook_id>/revoke/", views.webhook_revoke_view, name="revoke"),
    path("<uuid:webhook_id>/redeliver-failed/", views.webhook_redeliver_failed, name="redeliver-failed"),
    path("<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/", views.webhook_redeliver, name="redeliver"),
]
urlpatterns = [path("settings/webhooks/", include(pages))]
