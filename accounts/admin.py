from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import Account, Plan, User
from core.admin_mixins import NoSecretLookups


@admin.register(Plan)
class PlanAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("code", "name", "rank", "tool_groups", "max_domains", "max_mailboxes", "storage_bytes", "sends_per_day", "daily_request_cap")
    ordering = ("rank",)


class UserInline(admin.TabularInline):
    model = User
    fields = ("email", "full_name", "is_active", "last_login")
    readonly_fields = ("email", "last_login")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(NoSecretLookups, admin.ModelAdmin):
    list_display = ("name", "plan", "created_at", "mailbox_count", "domain_count")
    list_filter = ("plan",)
    search_fields = ("name", "users__email")
    readonly_fields = ("id", "event_cursor", "created_at")
    inlines = [UserInline]

    @admin.display(description="mailboxes")
    def mailbox_count(self, obj):
        return obj.mailboxes.count()

    @admin.display(description="domains")
    def domain_count(self, obj):
        return obj.domains.count()


@admin.register(User)
class UserAdmin(NoSecretLookups, BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "account", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name", "account__name")
    autocomplete_fields = ("account",)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "account")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "account")}),)
