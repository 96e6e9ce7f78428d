from django.contrib import admin

from core.admin_mixins import NoSecretLookups, ReadOnlyAdmin
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    """Endpoints and their health; the secrets (ciphertext) are not shown."""

    list_display = ("url", "account", "status", "consecutive_failures", "last_success_at", "created_at")
    list_filter = ("status",)
    search_fields = ("url", "account__name")
    exclude = ("secret_encrypted", "previous_secret_encrypted")
    list_select_related = ("account",)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "started_at", "address", "status_code", "duration_ms", "response_snippet", "error")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("created_at", "endpoint", "event", "status", "attempts", "next_attempt_at", "last_status_code")
    list_filter = ("status",)
    list_select_related = ("endpoint", "event")
    inlines = [WebhookAttemptInline]
