import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

# Tool groups a plan can unlock (docs/user-guide/accounts.md, Plans). The MCP registry and REST views name these.
TOOL_GROUP_MAILBOXES = "mailboxes"  # list_mailboxes, get_mailbox
TOOL_GROUP_MAIL = "mail"  # create_mailbox, domains, emails, send, extended mail tools
TOOL_GROUP_WEBHOOKS = "webhooks"  # list/register/delete webhooks
TOOL_GROUPS = (TOOL_GROUP_MAILBOXES, TOOL_GROUP_MAIL, TOOL_GROUP_WEBHOOKS)


class Plan(models.Model):
    """A subscription tier. Rows are seeded by a migration and editable in the admin."""

    FREE, PLUS, PRO, PRO_MAX = "FREE", "PLUS", "PRO", "PRO_MAX"

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=60)
    rank = models.PositiveSmallIntegerField(unique=True, help_text="Higher rank = higher tier.")
    tool_groups = models.JSONField(default=list, help_text=f"Any of {', '.join(TOOL_GROUPS)}.")
    max_domains = models.PositiveIntegerField(help_text="Custom domains (the shared domain does not count).")
    max_mailboxes = models.PositiveIntegerField()
    storage_bytes = models.BigIntegerField(help_text="Mail storage across all mailboxes.")
    sends_per_day = models.PositiveIntegerField()
    daily_request_cap = models.PositiveIntegerField(null=True, blank=True, help_text="API + MCP requests per UTC day; empty = none.")

    class Meta:
        ordering = ["rank"]

    def __str__(self):
        return self.code

    def allows_group(self, group):
        return group in self.tool_groups


class Account(models.Model):
    """The tenant: owns domains, mailboxes, mail, tokens and webhooks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    # Per-account event cursor; bumped under a row lock so cursors commit in order (events.services).
    event_cursor = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set when the account is closed: its deletion (a task) is due then; the sweep enqueues it again if lost.
    deletion_due_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.name

    # Limits are explicit calls made inside the services that consume them.
    def domains_available(self):
        return max(self.plan.max_domains - self.domains.filter(is_shared=False).count(), 0)

    def mailboxes_available(self):
        return max(self.plan.max_mailboxes - self.mailboxes.count(), 0)

    def storage_used(self):
        return self.mailboxes.aggregate(total=models.Sum("storage_used"))["total"] or 0

    def storage_available(self):
        return max(self.plan.storage_bytes - self.storage_used(), 0)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email, password, **fields):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **fields):
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email, password=None, **fields):
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with their email address."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=120, blank=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="users")
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    secret_fields = ("password",)  # never filterable in the admin (core.admin_mixins.NoSecretLookups)
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self):
        return self.email


class RequestLog(models.Model):
    """One API/MCP call's metadata, kept 30 days (docs/agents/tokens-and-oauth.md): who, what, how it ended, how long.

    Never a request body or a result. `token_id` is a plain number, not a foreign key: revoking a token
    deletes its row, and the history of its calls must outlive it (and cost no constraint check per insert).
    """

    created_at = models.DateTimeField(default=timezone.now)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="request_logs", db_index=False)
    token_id = models.BigIntegerField(null=True)
    operation = models.CharField(max_length=100, help_text="Operation (tool) name, or the path when there is none.")
    status = models.PositiveSmallIntegerField()
    duration_ms = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "created_at"], name="requestlog_account_time"),  # usage per day
            models.Index(fields=["token_id", "created_at"], name="requestlog_token_time"),  # a token's last use
            models.Index(fields=["created_at"], name="requestlog_time"),  # the purge
        ]
