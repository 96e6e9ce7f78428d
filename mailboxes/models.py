import uuid

from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings


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
    def display_address(self):
        """The address as people write it: an international domain in Unicode (bücher.example, not xn--…)."""
        return f"{self.local_part}@{self.domain.unicode_name}"

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
        verbose_name = "mailbox group"
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="group_unique_name_per_account")]

    def __str__(self):
        return self.name


class Folder(models.TextChoices):
    INBOX = "INBOX", "Inbox"
    SENT = "SENT", "Sent"
    DRAFTS = "DRAFTS", "Drafts"
    TRASH = "TRASH", "Trash"
    SPAM = "SPAM", "Spam"
    ARCHIVE = "ARCHIVE", "Archive"


TRASH_RETENTION_DAYS = 30


class Thread(models.Model):
    """A conversation inside one mailbox."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="threads")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="threads")
    subject = models.CharField(max_length=998, blank=True, help_text="Subject without Re:/Fwd: prefixes.")
    message_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["mailbox", "-last_message_at", "-id"], name="thread_mailbox_recent")]

    def __str__(self):
        return self.subject or "(no subject)"


def _raw_path(instance, filename):
    return f"raw/{instance.account_id}/{instance.id}.eml"


def _attachment_path(instance, filename):
    return f"attachments/{instance.email.account_id}/{instance.email_id}/{instance.position}"


class Email(models.Model):
    """One stored message: inbound or outbound, with its raw bytes kept in storage."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Delivery(models.TextChoices):
        NONE = "", "—"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        FAILED = "failed", "Failed"
        # A worker stopped between "handing off" and "handed off": it may or may not have left, and it is
        # not sent again blindly (at most once per recipient; mailboxes.work).
        UNCERTAIN = "uncertain", "Uncertain"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="emails")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="emails")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="emails")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    folder = models.CharField(max_length=8, choices=Folder.choices, default=Folder.INBOX)
    # Trash: where it came from, and when it is purged for good.
    previous_folder = models.CharField(max_length=8, choices=Folder.choices, blank=True)
    trashed_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True, db_index=True)
    is_read = models.BooleanField(default=False)
    is_starred = models.BooleanField(default=False)

    from_address = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=320, blank=True)
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    # Filled at ingest; the JSON itself cannot be searched as text (key names match, SQLite escapes ü).
    recipients_text = models.TextField(blank=True, editable=False,
                                       help_text="To and Cc names and addresses, casefolded, one per line.")
    subject = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True, help_text="The Date header, when it parsed.")
    received_at = models.DateTimeField(default=timezone.now, help_text="When QMailing stored it; lists sort by this.")
    message_id = models.CharField(max_length=998, blank=True, db_index=True, help_text="Without angle brackets.")
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.JSONField(default=list, blank=True)

    size = models.PositiveIntegerField(default=0, help_text="Bytes of the raw message.")
    raw = models.FileField(upload_to=_raw_path, max_length=255)
    text = models.TextField(blank=True)
    text_clean = models.TextField(blank=True, help_text="Text without quoted history and signature.")
    html = models.TextField(blank=True, help_text="Sanitised HTML.")
    snippet = models.CharField(max_length=240, blank=True)
    # The links of an HTML-only message, which `text` cites by number ("Shop now [3]"): {"3": "https://…"}.
    links = models.JSONField(default=dict, blank=True)
    has_attachments = models.BooleanField(default=False)
    defects = models.JSONField(default=list, blank=True, help_text="Parser defects; the raw message is kept as it came.")

    delivery_status = models.CharField(max_length=10, choices=Delivery.choices, blank=True, default="")
    delivery_detail = models.TextField(blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Follow-up work (mailboxes.work), recorded in the transaction that stores the email: outside delivery of
    # a SENT copy (to delivery_recipients), or forwarding of a received one. Due at this time; None when done.
    followup_due_at = models.DateTimeField(null=True, blank=True)
    delivery_recipients = models.JSONField(default=list, blank=True)
    delivery_bounced = models.BooleanField(default=False, help_text="A hosted recipient of the same send bounced.")
    handoff_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Set just before the relay call: 'handing off' (at most once).")
    delivery_digest = models.CharField(max_length=64, blank=True,
                                       help_text="SHA-256 of the delivery (bytes, envelope sender, verdicts): spots a retry.")
    # Inbound SPF / DKIM / DMARC / ARC results, checked by us on arrival: {"verdict": …, "spf": …, …}.
    authentication = models.JSONField(default=dict, blank=True)
    # PostgreSQL full-text document (GIN-indexed by a postgres-only migration); always NULL on SQLite,
    # where mailboxes_email_fts (FTS5) holds the index instead. Kept current by mailboxes.store.search.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["mailbox", "folder", "-received_at", "-id"], name="email_mailbox_folder_recent"),
            models.Index(fields=["account", "-received_at", "-id"], name="email_account_recent"),
            # The unified views (a folder across every mailbox: all inboxes, all trash) and their counts.
            models.Index(fields=["account", "folder", "-received_at", "-id"], name="email_account_folder_recent"),
            models.Index(fields=["thread", "received_at"], name="email_thread_order"),
            models.Index(fields=["followup_due_at"], name="email_followup_due",
                         condition=models.Q(followup_due_at__isnull=False)),
            # STARRED is a flag view across folders: a partial index keeps it a short index range.
            models.Index(fields=["mailbox", "-received_at", "-id"], name="email_mailbox_starred",
                         condition=models.Q(is_starred=True)),
            # Unread is a small slice of a big account: searching it must not walk all of its mail.
            models.Index(fields=["account", "-received_at", "-id"], name="email_account_unread",
                         condition=models.Q(is_read=False)),
        ]

    def __str__(self):
        return self.subject or "(no subject)"


class Extraction(models.TextChoices):
    NONE = "none", "Nothing to extract"
    PENDING = "pending", "Waiting for a worker"
    DONE = "done", "Extracted"
    FAILED = "failed", "Failed or over a limit"


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="attachments")
    position = models.PositiveSmallIntegerField(help_text="0-based index among the email's attachments.")
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    content_id = models.CharField(max_length=255, blank=True)
    is_inline = models.BooleanField(default=False)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=_attachment_path, max_length=255)
    extracted_text = models.TextField(blank=True)
    extraction = models.CharField(max_length=8, choices=Extraction.choices, default=Extraction.NONE,
                                  help_text="Text extraction runs in a worker after the message is stored.")

    class Meta:
        ordering = ["email", "position"]
        constraints = [models.UniqueConstraint(fields=["email", "position"], name="attachment_position_unique")]

    def __str__(self):
        return self.filename or f"attachment {self.position}"


class ForwardDelivery(models.Model):
    """One forwarding hand-off of an email to one address, written before the send and completed after.

    A retried or redelivered forward task sends only to the rows not yet sent, so addresses that
    already got the message never get it twice. A relayed row is marked `handing_off` just before the
    relay call and cleared after it: one found still marked (the worker died in between) may or may not
    have left, so it becomes `uncertain` instead of being sent again (at most once per recipient).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed for good"
        UNCERTAIN = "uncertain", "Uncertain (the worker stopped mid-hand-off)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="forward_deliveries")
    recipient = models.CharField(max_length=320)
    is_hosted = models.BooleanField(default=False, help_text="Delivered to a mailbox here rather than relayed.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    handing_off = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    attempted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "recipient"]
        constraints = [models.UniqueConstraint(fields=["email", "recipient"], name="forward_delivery_unique_recipient")]

    def __str__(self):
        return f"{self.recipient} ({self.status})"


class ForwardingConfirmation(models.Model):
    """An address outside the account that a mailbox wants to forward to: nothing goes there until the
    address's owner follows the link in the confirmation mail (only a hash of the link's token is kept)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="forwarding_confirmations")
    address = models.CharField(max_length=320)
    token_hash = models.CharField(max_length=64, unique=True)

    secret_fields = ("token_hash",)  # never filterable in the admin (core.admin_mixins.NoSecretLookups)
    requested_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["address"]
        constraints = [models.UniqueConstraint(fields=["account", "address"], name="forwarding_confirmation_unique")]

    def __str__(self):
        return f"{self.address} ({'confirmed' if self.confirmed_at else 'pending'})"

    @property
    def is_confirmed(self):
        return self.confirmed_at is not None


class SendRecord(models.Model):
    """The send ledger: one row per recipient of every message that leaves an account (sends, forwards,
    confirmation mails). The plan's sends per day count these rows, which outlive the mail they record."""

    class Kind(models.TextChoices):
        SEND = "send", "Send"
        FORWARD = "forward", "Forward"
        SYSTEM = "system", "Confirmation mail"

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="send_records")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    recipient = models.CharField(max_length=320)
    email_id = models.UUIDField(null=True, blank=True, help_text="The email it was sent for; kept after the email is gone.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["account", "created_at"], name="send_record_account_recent")]

    def __str__(self):
        return f"{self.kind} to {self.recipient} at {self.created_at:%Y-%m-%d %H:%M}"


def _draft_attachment_path(instance, filename):
    return f"drafts/{instance.draft.account_id}/{instance.draft_id}/{uuid.uuid4().hex}"


class Draft(models.Model):
    """A message prepared but not sent: by a person in the dashboard, or by an agent for a person to review.

    Sending turns it into an Email in SENT (mailboxes.store.drafts.draft_send) and deletes the draft; a
    scheduled draft is sent by the scheduler once `send_at` has passed.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        FAILED = "failed", "Failed to send"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="drafts")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="drafts")
    to = models.JSONField(default=list, blank=True, help_text='Addresses or "Name <address>", as given.')
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    reply_to_email = models.ForeignKey(Email, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                       help_text="The email this draft answers (threading headers are set on send).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    send_at = models.DateTimeField(null=True, blank=True, help_text="When a scheduled draft goes out.")
    error = models.TextField(blank=True, help_text="Why the last scheduled send failed.")
    created_via = models.CharField(max_length=120, blank=True, help_text="Dashboard, or the client of the token that made it.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["mailbox", "-updated_at", "-id"], name="draft_mailbox_recent"),
            models.Index(fields=["account", "-updated_at", "-id"], name="draft_account_recent"),
            models.Index(fields=["send_at"], name="draft_scheduled_due", condition=models.Q(status="scheduled")),
        ]

    def __str__(self):
        return self.subject or "(no subject)"


class DraftAttachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="attachments")
    position = models.PositiveSmallIntegerField()
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to=_draft_attachment_path, max_length=255)

    class Meta:
        ordering = ["draft", "position"]
        constraints = [models.UniqueConstraint(fields=["draft", "position"], name="draft_attachment_position_unique")]

    def __str__(self):
        return self.filename


class TokenMailboxLimit(models.Model):
    """An API/MCP token limited to some of its account's mailboxes (mailboxes.token_limits).

    The row is the marker: a token without one reaches every mailbox of its account, a token with one reaches
    only `mailboxes`. Those may come to be none (each deleted): the token then reaches nothing, never everything.
    """

    token = models.OneToOneField(oauth2_settings.ACCESS_TOKEN_MODEL, on_delete=models.CASCADE, primary_key=True,
                                 related_name="mailbox_limit")
    mailboxes = models.ManyToManyField(Mailbox, related_name="+", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self):
        return f"Mailbox limit of token #{self.pk}"


class OAuthMailboxLimit(models.Model):
    """The mailboxes a person chose on the OAuth consent page (agent.oauth_validator).

    Kept with the authorization code (DOT's Grant) until it is exchanged, then with the refresh-token family
    that exchange started: every access token issued from the code, and from each refresh after it, gets a
    TokenMailboxLimit with these mailboxes, even once an earlier access token of the family is gone.
    """

    grant = models.OneToOneField(oauth2_settings.GRANT_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="mailbox_limit")
    token_family = models.UUIDField(null=True, blank=True, unique=True)  # DOT's RefreshToken.token_family
    mailboxes = models.ManyToManyField(Mailbox, related_name="+", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self):
        return f"OAuth mailbox limit #{self.pk}"
