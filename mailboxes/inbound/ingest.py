"""The one path every message takes into the mail store: SMTP, ESP webhooks, imports, local delivery, SENT copies."""

import hashlib
import os
from contextlib import contextmanager
from datetime import timedelta
from contextvars import ContextVar

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from mailboxes.store.counters import counters_on_store, counters_on_store_sql
from mailboxes.inbound.extraction import extraction_wanted
from mailboxes.models import Attachment, Email, Extraction, Folder, Mailbox
from mailboxes.signals import attachments_pending, email_received
from mailboxes.inbound.parsing import normalize_newlines, parse_message
from mailboxes.store.search import (recipients_search_text, search_document, search_index_document,
                                    search_index_email, search_index_on_insert)
from mailboxes.store.services import delete_stored_files
from mailboxes.store.threads import thread_join, thread_lookup_query
from core.errors import Invalid, LimitReached
from events.models import EventType
from events.services import event_publish


# Files written by messages of the open ingest_batch, deleted if that batch rolls back.
_batch_files = ContextVar("ingest_batch_files", default=None)


class MailboxUnavailable(Exception):
    """email_ingest(require_active=True): the mailbox was deleted or suspended since the caller looked it up."""

    def __init__(self, *, suspended):
        super().__init__("suspended" if suspended else "deleted")
        self.suspended = suspended


def email_ingest(*, mailbox, raw: bytes, direction=Email.Direction.INBOUND, folder=Folder.INBOX, is_read=False,
                 delivery_status="", imported=False, parsed=None, authentication=None, content_digest=None,
                 require_active=False) -> Email:
    """Store one raw message in a mailbox and return the Email.

    Malformed mail never raises: the raw bytes are kept and parser defects recorded on the Email.
    Raises LimitReached when the account's plan storage cannot hold it. Threads, counters, the
    `email.received` event (inbound only), search indexing and the email_received signal
    (forwarding) run in the same transaction; forwarding, event push and attachment text extraction (a worker,
    which then rewrites the search entry) happen after commit. An `imported` message (your own
    archive) is sorted by its Date header instead of the time of storing, and is not announced:
    no `email.received` event and no email_received signal, so an archive never goes out to the
    forwarding addresses or to webhooks message by message. `parsed` lets a caller that stores one
    message in several mailboxes parse it once. `authentication` is the SPF/DKIM/DMARC record of mail
    from the outside world (mailboxes.inbound.authentication), checked by the caller before any lock.

    A re-delivery is acknowledged, not stored twice: an inbound message whose Message-ID and delivery digest
    (`content_digest`, see delivery_digest: the bytes as the sender sent them, before the caller's trace
    headers, its envelope sender and verdicts) match an email stored in the same mailbox within 24 hours
    returns that email (the sender retried a delivery whose answer it never got).

    `require_active`: raise MailboxUnavailable, storing nothing, when the mailbox no longer exists or is suspended
    (read under the account lock, in the storage check's statement), and take its forwarding addresses from
    that same read: for a caller that looked the mailbox up earlier (SMTP, at RCPT).
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise Invalid("A raw message must be bytes.", field="raw")
    raw = bytes(raw)
    parsed = parsed or parse_message(raw)
    now = timezone.now()
    received_at = parsed.date if imported and parsed.date and parsed.date <= now else now
    digest = content_digest or delivery_digest(raw=raw, authentication=authentication)
    written = []
    with _files_dropped_unless_committed(written):
        # Locks the account: the duplicate check below is exact.
        _storage_check(mailbox=mailbox, size=len(raw), require_active=require_active)
        # On PostgreSQL the same statement applies the counters unless it finds a duplicate.
        counters = (counters_on_store_sql(mailbox_id=mailbox.pk, size=len(raw), is_read=is_read, folder=folder)
                    if connection.vendor == "postgresql" else None)
        duplicate_id, thread_id = _duplicate_and_thread(
            mailbox=mailbox, parsed=parsed, digest=digest, now=now, at=received_at,
            check_duplicate=direction == Email.Direction.INBOUND and not imported, counters=counters)
        if duplicate_id is not None:  # a sender's retry of what we stored: acknowledged, not stored twice
            return Email.objects.get(pk=Email._meta.pk.to_python(duplicate_id))
        email = _email_store(mailbox=mailbox, raw=raw, parsed=parsed, direction=direction, folder=folder,
                             is_read=is_read, delivery_status=delivery_status, received_at=received_at,
                             written=written, authentication=authentication or {}, digest=digest, thread_id=thread_id)
        if counters is None:
            counters_on_store(email)
        if direction == Email.Direction.INBOUND and not imported:
            event_publish(account=mailbox.account, mailbox=mailbox, type=EventType.EMAIL_RECEIVED,
                          payload=_event_payload(email))
            email_received.send(sender=Email, email=email)  # forwarding, in this transaction
    batch = _batch_files.get()
    if batch is not None:
        batch.extend(written)
    return email


# Fields computed from the raw message by parsing; email_rederive rewrites them when parsing improves.
DERIVED_FIELDS = ("text", "text_clean", "html", "snippet", "links", "defects")


def email_rederive(*, email) -> bool:
    """Recompute a stored email's derived fields from its raw message; True when any changed.

    The raw message is the record: parsing fixes (reply cutting, HTML to text, line endings) reach
    mail stored before them through this. Search is rewritten when the text changed; attachment
    text keeps its line endings to one form too. Flags, folder, thread and counters are untouched.
    """
    with email.raw.open("rb") as handle:
        parsed = parse_message(handle.read())
    changed = [name for name in DERIVED_FIELDS if getattr(email, name) != getattr(parsed, name)]
    with transaction.atomic():
        if changed:
            for name in changed:
                setattr(email, name, getattr(parsed, name))
            email.save(update_fields=changed)
        attachments = [a for a in email.attachments.all() if "\r" in a.extracted_text]
        for attachment in attachments:
            attachment.extracted_text = normalize_newlines(attachment.extracted_text)
        Attachment.objects.bulk_update(attachments, ["extracted_text"])
        if "text" in changed or attachments:
            search_index_email(email=email)
    return bool(changed or attachments)


@contextmanager
def ingest_batch():
    """One transaction around several email_ingest calls (imports, one message to many mailboxes).

    Each message still runs in its own savepoint, so a message that fails (including LimitReached)
    rolls back alone and the caller may go on. If the batch itself rolls back, the files its
    messages wrote are deleted with the rows.
    """
    outer, files = _batch_files.get(), []
    token = _batch_files.set(files)
    try:
        with _files_dropped_unless_committed(files):
            yield
    finally:
        _batch_files.reset(token)
    if outer is not None:
        outer.extend(files)  # committed only into the enclosing batch, which may still roll back


@contextmanager
def _files_dropped_unless_committed(files):
    """A transaction whose stored files (appended to `files` inside it) are deleted if it rolls back, and only
    then: an error raised after the commit (an on-commit callback, the caller's own code) leaves the files
    of committed rows alone. The first on-commit callback says the commit happened."""
    committed = []
    try:
        with transaction.atomic():
            transaction.on_commit(lambda: committed.append(True))
            yield
    except BaseException:
        if not committed:
            delete_stored_files(files)
        raise


DUPLICATE_WINDOW = timedelta(hours=24)


def delivery_digest(*, raw, envelope_from="", authentication=None):
    """SHA-256 of a delivery as its sender made it: the bytes it sent (before our trace headers), its envelope
    sender and what SPF, DKIM and DMARC said of it. A sender's retry gives the same digest; a third party who
    has the same bytes (a co-recipient) and sends them first from elsewhere does not, so it can never make the
    genuine delivery be dropped as its duplicate."""
    authentication = authentication or {}
    verdicts = [str(authentication.get("verdict", "")), str((authentication.get("spf") or {}).get("result", "")),
                str((authentication.get("dmarc") or {}).get("result", "")),
                ",".join(sorted(str(d.get("result", "")) for d in authentication.get("dkim") or [] if isinstance(d, dict)))]
    digest = hashlib.sha256(raw)
    digest.update(b"\0" + "\0".join([envelope_from.lower(), *verdicts]).encode("utf-8", "replace"))
    return digest.hexdigest()


def _duplicate_and_thread(*, mailbox, parsed, digest, now, at, check_duplicate, counters=None):
    """(id of a recent duplicate or None, raw id of the message's thread or None), in one round trip.

    The duplicate: an email of this mailbox stored in the last 24 hours with the same Message-ID and the same
    delivery digest (the sender retried a delivery whose answer it never got); without a Message-ID nothing is
    a duplicate. The thread: thread_lookup_query's answer, for thread_join. Both read mailboxes_email by
    mailbox and Message-ID, so one statement with two scalar subqueries asks both; it runs after the account
    lock (_storage_check), so the duplicate check is exact. `counters` (PostgreSQL): the counters UPDATE of the
    message about to be stored, run in the same statement (a data-modifying CTE) unless a duplicate is found.
    """
    duplicate, duplicate_params = "NULL", []
    if check_duplicate and parsed.message_id:
        duplicate = ("(SELECT id FROM mailboxes_email WHERE mailbox_id = %s AND message_id = %s"
                     " AND delivery_digest = %s AND received_at >= %s ORDER BY received_at LIMIT 1)")
        duplicate_params = [Mailbox._meta.pk.get_db_prep_value(mailbox.pk, connection), parsed.message_id, digest,
                            connection.ops.adapt_datetimefield_value(now - DUPLICATE_WINDOW)]
    thread, thread_params = "NULL", []
    thread_query = thread_lookup_query(mailbox=mailbox, message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
                                       references=parsed.references, subject=parsed.subject, at=at)
    if thread_query is not None:
        thread, thread_params = f"({thread_query[0]})", thread_query[1]
    if counters is not None:
        # The CTE's UPDATE sees the same snapshot as the duplicate subquery; the SELECT lists what was found.
        update, update_params = counters
        statement = (f"WITH found AS (SELECT {duplicate} AS duplicate_id, {thread} AS thread_id),"
                     f" counted AS ({update} AND (SELECT duplicate_id FROM found) IS NULL)"
                     " SELECT duplicate_id, thread_id FROM found")
        params = [*duplicate_params, *thread_params, *update_params]
    elif duplicate_params or thread_params:
        statement, params = f"SELECT {duplicate}, {thread}", [*duplicate_params, *thread_params]
    else:
        return None, None
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        duplicate_id, thread_id = cursor.fetchone()
    return duplicate_id, thread_id


def _fsync_stored(storage, name):
    """Raw bytes on stable storage before the commit (and so before SMTP's 250): the file and its folder are
    fsynced on the filesystem backend. Object storage (no local path) gives its own guarantee on upload."""
    try:
        path = storage.path(name)
    except NotImplementedError:
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    folder = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _storage_check(*, mailbox, size, require_active=False):
    """Lock the account row and refuse a message its plan storage cannot hold (one query); with
    `require_active`, the same statement reads whether the mailbox still exists and is active.

    The lock (event_publish takes the same one) serialises concurrent deliveries to one account, so
    two messages cannot both squeeze into the last free bytes. Only the account row is locked, never
    the plan row that every account on the plan shares.
    """
    # Written out: every message runs it, and the ORM spends longer composing this query than the database running it.
    lock = " FOR UPDATE OF account" if connection.features.has_select_for_update_of else ""
    fresh, params = "NULL, NULL", []
    if require_active:  # and what storing reads of it that may have changed since the caller's lookup
        key = Mailbox._meta.pk.get_db_prep_value(mailbox.pk, connection)
        fresh = ("(SELECT box.status FROM mailboxes_mailbox box WHERE box.id = %s),"
                 " (SELECT box.forwarding_addresses FROM mailboxes_mailbox box WHERE box.id = %s)")
        params += [key, key]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT plan.storage_bytes, plan.name,"
            " (SELECT COALESCE(SUM(box.storage_used), 0) FROM mailboxes_mailbox box WHERE box.account_id = account.id),"
            f" {fresh}"
            " FROM accounts_account account JOIN accounts_plan plan ON plan.id = account.plan_id"
            f" WHERE account.id = %s{lock}",
            [*params, Account._meta.pk.get_db_prep_value(mailbox.account_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:
        raise MailboxUnavailable(suspended=False)  # the account itself is gone
    allowed, plan_name, used, status, forwarding = row
    if require_active:
        if status != Mailbox.Status.ACTIVE:
            raise MailboxUnavailable(suspended=status is not None)
        mailbox.status = status
        # Forwarding is decided in this transaction (email_received): from the row, not from the caller's copy.
        mailbox.forwarding_addresses = Mailbox._meta.get_field("forwarding_addresses").from_db_value(
            forwarding, None, connection)
    if used + size > allowed:
        raise LimitReached(f"The mail storage of the {plan_name} plan is used up; this message "
                           f"({size} bytes) does not fit. Delete mail or upgrade the plan.", limit="storage")


def _email_store(*, mailbox, raw, parsed, direction, folder, is_read, delivery_status, received_at, written,
                 authentication, digest, thread_id):
    thread_id = thread_join(mailbox=mailbox, thread_id=thread_id, subject=parsed.subject, at=received_at)
    sender = parsed.from_[0] if parsed.from_ else {"address": "", "name": ""}
    email = Email(
        account_id=mailbox.account_id, mailbox=mailbox, thread_id=thread_id, direction=direction, folder=folder,
        is_read=is_read, from_address=sender["address"], from_name=sender["name"], to=parsed.to, cc=parsed.cc,
        bcc=parsed.bcc, reply_to=parsed.reply_to, subject=parsed.subject, date=parsed.date,
        recipients_text=recipients_search_text(parsed.to, parsed.cc),
        received_at=received_at, message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
        references=parsed.references, size=len(raw), text=parsed.text, text_clean=parsed.text_clean,
        html=parsed.html, snippet=parsed.snippet, links=parsed.links, has_attachments=bool(parsed.attachments),
        defects=parsed.defects, delivery_status=delivery_status, authentication=authentication,
        delivery_digest=digest,
    )
    email.raw.save("message.eml", ContentFile(raw), save=False)
    written.append((email.raw.storage, email.raw.name))
    _fsync_stored(email.raw.storage, email.raw.name)
    rows = []
    for position, item in enumerate(parsed.attachments):
        attachment = Attachment(
            email=email, position=position, filename=item.filename, content_type=item.content_type,
            content_id=item.content_id, is_inline=item.is_inline, size=len(item.data),
            sha256=hashlib.sha256(item.data).hexdigest(),
            # Text is extracted by a worker after commit: a hostile PDF must not hold up receiving.
            extraction=(Extraction.PENDING if extraction_wanted(content_type=item.content_type, data=item.data)
                        else Extraction.NONE),
        )
        attachment.file.save(item.filename or "attachment", ContentFile(item.data), save=False)
        written.append((attachment.file.storage, attachment.file.name))
        rows.append(attachment)
    # The search entry is built from what is in memory; reading the attachments back would cost a query.
    document = search_document(subject=email.subject, from_name=email.from_name, from_address=email.from_address,
                               body=email.text, attachment_texts=[], attachment_names=[row.filename for row in rows])
    indexed = search_index_on_insert(email=email, document=document)
    email.save(force_insert=True)
    if indexed:
        del email.search_vector  # an expression until read back; deferred, so a later save() leaves it alone
    Attachment.objects.bulk_create(rows)
    if not indexed:
        search_index_document(email_id=email.pk, document=document)
    if any(row.extraction == Extraction.PENDING for row in rows):
        attachments_pending.send(sender=Email, email=email)
    return email


def _event_payload(email):
    return {"email_id": str(email.id), "mailbox_id": str(email.mailbox_id), "thread_id": str(email.thread_id),
            "from": {"address": email.from_address, "name": email.from_name}, "subject": email.subject,
            "snippet": email.snippet, "folder": email.folder, "has_attachments": email.has_attachments}
