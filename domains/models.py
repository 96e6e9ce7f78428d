import uuid

from django.db import models
from django.utils import timezone

CHECK_SLOTS = 60  # verification spreads across the minutes of the hour


def slot_for(domain_id):
    return domain_id.int % CHECK_SLOTS


class Domain(models.Model):
    """A mail domain: the platform's shared domain (no account) or a customer's custom domain."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending DNS"
        VERIFIED = "verified", "Verified"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.CASCADE, related_name="domains")
    # Several accounts may claim a name; only the one that proves ownership (verified) holds it.
    name = models.CharField(max_length=253, db_index=True, help_text="Lower-case ASCII (IDNA) form.")
    is_shared = models.BooleanField(default=False, help_text="The platform's shared domain: always verified.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    ownership_token = models.CharField(max_length=64, editable=False)
    dkim_selector = models.CharField(max_length=63)
    dkim_private_key = models.TextField(editable=False, help_text="PEM; never leaves the server.")
    dkim_public_key = models.TextField(editable=False, help_text="Base64 DER SubjectPublicKeyInfo (the DNS p= value).")
    check_slot = models.PositiveSmallIntegerField(db_index=True, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    ownership_failing_since = models.DateTimeField(null=True, blank=True, editable=False,
                                                   help_text="First failed ownership check since the last good one.")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    secret_fields = ("dkim_private_key",)  # never filterable in the admin (core.admin_mixins.NoSecretLookups)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=models.Q(status="verified"), name="domain_one_verified_holder"),
            models.UniqueConstraint(fields=["account", "name"], name="domain_one_claim_per_account"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_verified(self):
        return self.is_shared or self.status == self.Status.VERIFIED

    @property
    def unicode_name(self):
        from domains.names import domain_to_unicode

        return domain_to_unicode(self.name)


class DnsRecord(models.Model):
    """One line of a domain's DNS checklist, with what the last check found."""

    class Kind(models.TextChoices):
        MX = "mx", "MX"
        SPF = "spf", "SPF"
        DKIM = "dkim", "DKIM"
        DMARC = "dmarc", "DMARC"
        OWNERSHIP = "ownership", "Ownership"

    class State(models.TextChoices):
        UNCHECKED = "unchecked", "Not checked yet"
        OK = "ok", "OK"
        MISSING = "missing", "Missing"
        MISMATCH = "mismatch", "Mismatch"
        ERROR = "error", "Lookup failed"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_records")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    host = models.CharField(max_length=253)
    type = models.CharField(max_length=8)
    expected = models.TextField()
    found = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNCHECKED)
    fix = models.TextField(blank=True)
    required = models.BooleanField(default=True, help_text="Needed before the domain counts as verified.")
    checked_at = models.DateTimeField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["domain", "kind"], name="dnsrecord_one_per_kind")]

    def __str__(self):
        return f"{self.type} {self.host}"
