import uuid

from django.db import models
from django.utils import timezone

from events.models import Event, EventType


# What an endpoint can subscribe to (`*` is all of them).
WEBHOOK_EVENT_TYPES = (
    EventType.EMAIL_RECEIVED, EventType.EMAIL_SENT, EventType.EMAIL_DELIVERED, EventType.EMAIL_BOUNCED,
    EventType.EMAIL_TRASHED, EventType.MAILBOX_CREATED, EventType.DOMAIN_VERIFIED, EventType.DOMAIN_DNS_CHANGED,
    EventType.WEBHOOK_DISABLED,
)


class WebhookEndpoint(models.Model):
    """An https URL that receives the account's events, signed with its secret (stored encrypted)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled after failures"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=240, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    secret_encrypted = models.TextField(help_text="Fernet ciphertext of the whsec_ secret (webhooks.secrets).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(max_length=240, blank=True)
    # The secret being replaced: signed with too until it expires (rotation overlap).
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="First failure since the last success.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    secret_fields = ("secret_encrypted", "previous_secret_encrypted")  # never filterable in the admin

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at", "-id"], name="webhook_account_recent")]

    def __str__(self):
        return self.url

    def wants(self, event_type):
        return "*" in self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event for one endpoint: created with the event, attempted until a 2xx or the schedule ends."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # the retry schedule ran out, or the endpoint is gone (410)
        CANCELLED = "cancelled", "Cancelled"  # the endpoint was revoked or disabled first

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Attempts in the current series.")
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="Due time; a claimed attempt pushes it out by a lease.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_once_per_endpoint_event")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=models.Q(status="pending")),
            models.Index(fields=["endpoint", "-created_at", "-id"], name="delivery_endpoint_recent"),
        ]

    @property
    def message_id(self):
        """The webhook-id header: one per event, the same on every retry and redelivery (consumers dedupe on it)."""
        return f"msg_{self.event_id.hex}"


class WebhookAttempt(models.Model):
    """One POST of a delivery, written before the request and completed after it."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    address = models.CharField(max_length=64, blank=True, help_text="The checked IP address connected to.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_snippet = models.CharField(max_length=1000, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number", "id"]
