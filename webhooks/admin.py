from django.contrib import admin

from webhooks.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The event log is append-only: visible, never editable."""

    list_display = ("created_at", "account", "cursor", "type", "mailbox")
    list_filter = ("type",)
    search_fields = ("account__name", "type", "id")
    list_select_related = ("account", "mailbox__domain")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
