import uuid

from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    EMAIL_RECEIVED = "email.received"
    EMAIL_SENT = "email.sent"
    EMAIL_DELIVERED = "email.delivered"
    EMAIL_BOUNCED = "email.bounced"
    EMAIL_FAILED = "email.failed"
    EMAIL_TRASHED = "email.trashed"
    MAILBOX_CREATED = "mailbox.created"
    MAILBOX_DELETED = "mailbox.deleted"
    DOMAIN_ADDED = "domain.added"
    DOMAIN_VERIFIED = "domain.verified"
    DOMAIN_DNS_CHANGED = "domain.dns_changed"
    WEBHOOK_DISABLED = "webhook.disabled"


class AppendOnly(Exception):
    pass


class Event(models.Model):
    """One state change the product reports. Append-only; `cursor` increases per account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="events")
    mailbox = models.ForeignKey("mailboxes.Mailbox", null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    cursor = models.BigIntegerField()
    type = models.CharField(max_length=40, choices=EventType.choices)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The log began inside the webhooks app; the table kept its name when the model moved here.
        db_table = "webhooks_event"
        ordering = ["account", "cursor"]
        constraints = [models.UniqueConstraint(fields=["account", "cursor"], name="event_cursor_unique_per_account")]
        indexes = [models.Index(fields=["mailbox", "cursor"], name="event_mailbox_cursor")]

    def __str__(self):
        return f"{self.type} #{self.cursor}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("Events are append-only")
        super().save(*args, **kwargs)
