from django.contrib import admin

from domains.models import DnsRecord, Domain


class DnsRecordInline(admin.TabularInline):
    model = DnsRecord
    fields = ("kind", "host", "type", "expected", "found", "state", "fix", "checked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "is_shared", "status", "last_checked_at", "verified_at", "check_slot")
    list_filter = ("status", "is_shared")
    search_fields = ("name", "account__name")
    # The DKIM private key is deliberately not shown anywhere.
    readonly_fields = ("id", "ownership_token", "dkim_selector", "dkim_public_key", "check_slot", "last_checked_at", "verified_at", "created_at")
    fields = ("name", "account", "is_shared", "status") + readonly_fields
    inlines = [DnsRecordInline]
    actions = ["verify_now"]

    @admin.action(description="Check DNS now")
    def verify_now(self, request, queryset):
        from domains.services import domain_verify

        for domain in queryset:
            domain_verify(domain=domain)
        self.message_user(request, f"Checked {queryset.count()} domain(s).")


@admin.register(DnsRecord)
class DnsRecordAdmin(admin.ModelAdmin):
    list_display = ("domain", "kind", "host", "type", "state", "checked_at")
    list_filter = ("kind", "state")
    search_fields = ("domain__name", "host")
    readonly_fields = ("domain", "kind", "host", "type", "expected", "found", "state", "fix", "required", "checked_at", "position")
