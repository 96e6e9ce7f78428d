from django.contrib import admin

from mailboxes.models import Group, Mailbox


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ("address", "account", "display_name", "status", "message_count", "unread_count", "storage_used", "created_at")
    list_filter = ("status", "domain__is_shared")
    search_fields = ("local_part", "domain__name", "display_name", "account__name")
    readonly_fields = ("id", "message_count", "unread_count", "storage_used", "created_at")
    list_select_related = ("domain", "account")
    autocomplete_fields = ("account", "domain")


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "created_at")
    search_fields = ("name", "account__name")
    filter_horizontal = ("members",)
    autocomplete_fields = ("account",)
