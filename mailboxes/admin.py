from django.contrib import admin

from core.admin_mixins import NoSecretLookups, ReadOnlyAdmin

from mailboxes.models import Attachment, Email, ForwardDelivery, ForwardingConfirmation, Group, Mailbox, SendRecord, Thread


@admin.register(Mailbox)
class MailboxAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("address", "account", "display_name", "status", "message_count", "unread_count", "storage_used", "created_at")
    list_filter = ("status", "domain__is_shared")
    search_fields = ("local_part", "domain__name", "display_name", "account__name")
    readonly_fields = ("id", "message_count", "unread_count", "storage_used", "created_at")
    list_select_related = ("domain", "account")
    autocomplete_fields = ("account", "domain")


@admin.register(Group)
class GroupAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("name", "account", "created_at")
    search_fields = ("name", "account__name")
    filter_horizontal = ("members",)
    autocomplete_fields = ("account",)


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fields = ("position", "filename", "content_type", "size", "sha256", "is_inline")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Email)
class EmailAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    """Stored mail is changed only through the mail services (counters, search index, events)."""

    list_display = ("subject", "from_address", "mailbox", "direction", "folder", "is_read", "delivery_status", "received_at")
    list_filter = ("direction", "folder", "delivery_status", "is_read", "is_starred", "has_attachments")
    search_fields = ("subject", "from_address", "message_id", "mailbox__local_part", "mailbox__domain__name")
    list_select_related = ("mailbox__domain",)
    date_hierarchy = "received_at"
    exclude = ("search_vector",)
    inlines = [AttachmentInline]


@admin.register(Thread)
class ThreadAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("subject", "mailbox", "message_count", "last_message_at")
    search_fields = ("subject", "mailbox__local_part", "mailbox__domain__name")
    list_select_related = ("mailbox__domain",)


@admin.register(Attachment)
class AttachmentAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("filename", "content_type", "size", "email")
    search_fields = ("filename", "sha256", "email__subject")
    list_filter = ("content_type", "is_inline")
    list_select_related = ("email",)


@admin.register(ForwardDelivery)
class ForwardDeliveryAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("recipient", "status", "attempts", "is_hosted", "attempted_at", "completed_at", "email")
    list_filter = ("status", "is_hosted")
    search_fields = ("recipient", "email__subject", "error")
    list_select_related = ("email",)


@admin.register(ForwardingConfirmation)
class ForwardingConfirmationAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("address", "account", "requested_at", "confirmed_at")
    search_fields = ("address", "account__name")
    exclude = ("token_hash",)


@admin.register(SendRecord)
class SendRecordAdmin(NoSecretLookups, ReadOnlyAdmin, admin.ModelAdmin):
    """The send ledger: what counted against each account's sends per day."""

    list_display = ("created_at", "account", "kind", "recipient", "email_id")
    list_filter = ("kind",)
    search_fields = ("recipient", "account__name")
    date_hierarchy = "created_at"
