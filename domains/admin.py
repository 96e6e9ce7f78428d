from django.contrib import admin
from django.utils.html import format_html
from django.template.defaultfilters import pluralize

from domains.models import DnsRecord, Domain
from core.admin_mixins import NoSecretLookups


def wrapped(value):
    """Long keys and record values break anywhere instead of widening the page."""
    return format_html('<code style="word-break: break-all; white-space: normal">{}</code>', value or "—")


class DnsRecordInline(admin.TabularInline):
    model = DnsRecord
    fields = ("kind", "host", "type", "expected_value", "found_value", "state", "fix", "checked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="expected")
    def expected_value(self, obj):
        return wrapped(obj.expected)

    @admin.display(description="found")
    def found_value(self, obj):
        return wrapped(obj.found)


@admin.register(Domain)
class DomainAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("name", "account", "is_shared", "status", "last_checked_at", "verified_at", "check_slot")
    list_filter = ("status", "is_shared")
    search_fields = ("name", "account__name")
    # The DKIM private key is deliberately not shown anywhere.
    readonly_fields = ("id", "ownership_token", "dkim_selector", "dkim_public_key_value", "check_slot", "last_checked_at", "verified_at", "created_at")
    fields = ("name", "account", "is_shared", "status") + readonly_fields
    inlines = [DnsRecordInline]
    actions = ["verify_now"]

    def has_add_permission(self, request):
        return False  # domains are bound through domain_add, which makes the key, token and checklist

    @admin.display(description="DKIM public key")
    def dkim_public_key_value(self, obj):
        return wrapped(obj.dkim_public_key)

    @admin.action(description="Check DNS now")
    def verify_now(self, request, queryset):
        from domains.services import domain_verify

        for domain in queryset:
            domain_verify(domain=domain)
        self.message_user(request, f"Checked {queryset.count()} domain{pluralize(queryset.count())}.")


@admin.register(DnsRecord)
class DnsRecordAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("domain", "kind", "host", "type", "state", "checked_at")
    list_filter = ("kind", "state")
    search_fields = ("domain__name", "host")
    readonly_fields = ("domain", "kind", "host", "type", "expected", "found", "state", "fix", "required", "checked_at", "position")

    def has_add_permission(self, request):
        return False  # records come from the domain's checklist
