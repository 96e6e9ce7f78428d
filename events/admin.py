from django.contrib import admin

from core.admin_mixins import NoSecretLookups, ReadOnlyAdmin
from events.models import Event


@admin.register(Event)
class EventAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    """The event log is append-only: visible, never editable."""

    list_display = ("created_at", "account", "cursor", "type", "mailbox")
    list_filter = ("type",)
    search_fields = ("account__name", "type", "id")
    list_select_related = ("account", "mailbox__domain")

    def has_delete_permission(self, request, obj=None):
        return False
