import uuid

from django.db import models
from django.utils import timezone


class Mailbox(models.Model):
    """A real address on a verified domain, owned by one account."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="mailboxes")
    domain = models.ForeignKey("domains.Domain", on_delete=models.PROTECT, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    display_name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    forwarding_addresses = models.JSONField(default=list, blank=True)
    forward_keep_copy = models.BooleanField(default=True, help_text="Keep a copy here when forwarding.")
    # Counters kept exact by the mail store's services (F-expression updates in the same transaction).
    message_count = models.PositiveIntegerField(default=0)
    unread_count = models.PositiveIntegerField(default=0)
    storage_used = models.BigIntegerField(default=0, help_text="Bytes of stored mail and attachments.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["domain__name", "local_part"]
        verbose_name_plural = "mailboxes"
        constraints = [models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_unique_address")]

    def __str__(self):
        return self.address

    @property
    def address(self):
        return f"{self.local_part}@{self.domain.name}"

    @property
    def is_active(self):
        return self.status == self.Status.ACTIVE


class Group(models.Model):
    """A named set of the account's mailboxes (a team, a brand)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="mailbox_groups")
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=240, blank=True)
    members = models.ManyToManyField(Mailbox, blank=True, related_name="groups")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="group_unique_name_per_account")]

    def __str__(self):
        return self.name
