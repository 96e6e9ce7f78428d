"""Organising stored mail: flags, moves, trash, restore and purge, with counters kept exact."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from mailboxes.store.counters import counters_on_change, counters_on_remove
from mailboxes.models import TRASH_RETENTION_DAYS, Email, Folder, Thread
from mailboxes.store.search import search_unindex_email
from core.errors import Conflict, Invalid
from events.models import EventType
from events.services import event_publish

PURGE_BATCH = 200


def delete_stored_files(files):
    """Delete (storage, name) pairs: files written for rows that rolled back or were purged."""
    for storage, name in files:
        storage.delete(name)


def _locked(email):
    # Counters move by deltas, so each change must start from the row as it is now, not as loaded.
    return Email.objects.select_for_update().select_related("account", "mailbox").get(pk=email.pk)


def email_update(*, email, is_read=None, is_starred=None, folder=None) -> Email:
    """Set read/starred and move between folders; a move to TRASH is email_trash, out of it a restore."""
    if folder is not None and folder not in Folder.values:
        raise Invalid(f"folder must be one of {', '.join(Folder.values)}.", field="folder")
    with transaction.atomic():
        current = _locked(email)
        if folder == Folder.TRASH and current.folder != Folder.TRASH:
            current = email_trash(email=current)
        was_read, was_folder = current.is_read, current.folder
        fields = []
        if is_read is not None and current.is_read != bool(is_read):
            current.is_read = bool(is_read)
            fields.append("is_read")
        if is_starred is not None and current.is_starred != bool(is_starred):
            current.is_starred = bool(is_starred)
            fields.append("is_starred")
        if folder is not None and folder != current.folder:
            current.folder = folder
            current.previous_folder, current.trashed_at, current.purge_after = "", None, None
            fields += ["folder", "previous_folder", "trashed_at", "purge_after"]
        if fields:
            current.save(update_fields=fields)
            counters_on_change(current, was_read=was_read, was_folder=was_folder)
    return current


def email_trash(*, email) -> Email:
    """Move to TRASH, remembering the folder it came from; purged for good after the retention period."""
    with transaction.atomic():
        current = _locked(email)
        if current.folder == Folder.TRASH:
            return current
        was_read, was_folder = current.is_read, current.folder
        now = timezone.now()
        current.previous_folder, current.folder = current.folder, Folder.TRASH
        current.trashed_at, current.purge_after = now, now + timedelta(days=TRASH_RETENTION_DAYS)
        current.save(update_fields=["folder", "previous_folder", "trashed_at", "purge_after"])
        counters_on_change(current, was_read=was_read, was_folder=was_folder)
        event_publish(account=current.account, mailbox=current.mailbox, type=EventType.EMAIL_TRASHED, payload={
            "email_id": str(current.id), "mailbox_id": str(current.mailbox_id), "thread_id": str(current.thread_id),
            "previous_folder": current.previous_folder, "purge_after": current.purge_after.isoformat()})
    return current


def email_restore(*, email) -> Email:
    """Back from TRASH to the folder it came from (INBOX if unknown); a no-op outside TRASH."""
    with transaction.atomic():
        current = _locked(email)
        if current.folder != Folder.TRASH:
            return current
        was_read, was_folder = current.is_read, current.folder
        current.folder = current.previous_folder if current.previous_folder in Folder.values and current.previous_folder != Folder.TRASH else Folder.INBOX
        current.previous_folder, current.trashed_at, current.purge_after = "", None, None
        current.save(update_fields=["folder", "previous_folder", "trashed_at", "purge_after"])
        counters_on_change(current, was_read=was_read, was_folder=was_folder)
    return current


def email_restore_or_update(*, email, restore=False, is_read=None, is_starred=None, folder=None) -> Email:
    """One agent call's change: restore from TRASH first when asked, then the flags and folder (email_update)."""
    with transaction.atomic():
        if restore:
            email = email_restore(email=email)
        return email_update(email=email, is_read=is_read, is_starred=is_starred, folder=folder)


def email_purge(*, email) -> None:
    """Delete an email for good: row, attachments, raw and attachment files, search entry; counters follow."""
    with transaction.atomic():
        try:
            current = Email.objects.select_for_update().get(pk=email.pk)
        except (Email.DoesNotExist, ValidationError):
            return
        files = [(current.raw.storage, current.raw.name)] if current.raw else []
        files += [(a.file.storage, a.file.name) for a in current.attachments.all() if a.file]
        thread_id = current.thread_id
        counters_on_remove(current)
        search_unindex_email(email_id=current.pk)
        current.delete()
        _thread_after_removal(thread_id)
        # Files go only once the rows are gone for sure; a rollback keeps both.
        transaction.on_commit(lambda: delete_stored_files(files))


def _thread_after_removal(thread_id):
    remaining = Email.objects.filter(thread_id=thread_id).aggregate(last=Max("received_at"))["last"]
    if remaining is None:
        Thread.objects.filter(pk=thread_id).delete()
    else:
        Thread.objects.filter(pk=thread_id).update(message_count=F("message_count") - 1, last_message_at=remaining)


def email_delete_forever(*, email) -> None:
    """A person's "delete forever": only from TRASH or SPAM, so nothing is lost in one click from a live folder."""
    if email.folder not in (Folder.TRASH, Folder.SPAM):
        raise Conflict("Only mail in Trash or Spam can be deleted for good. Move it to Trash first.",
                       code="not_in_trash")
    email_purge(email=email)


EMPTY_NOW = 500


def trash_empty(*, account, mailbox=None, now=None, batch=PURGE_BATCH) -> tuple[int, int]:
    """"Empty trash": everything in TRASH (of one mailbox, or of every mailbox of the account) is due for purge
    at once, and up to EMPTY_NOW of it goes now. Returns (purged now, left for emails_purge_expired, which the
    caller enqueues): a trash of any size costs one request a bounded amount of work."""
    now = now or timezone.now()
    emails = Email.objects.filter(account=account, folder=Folder.TRASH)
    if mailbox is not None:
        emails = emails.filter(mailbox=mailbox)
    due = emails.update(purge_after=now)
    purged = 0
    while purged < min(due, EMPTY_NOW):
        chunk = list(emails.filter(purge_after__lte=now).order_by("pk")[:min(batch, EMPTY_NOW - purged)])
        if not chunk:
            break
        for email in chunk:
            email_purge(email=email)
            purged += 1
    return purged, max(due - purged, 0)


def emails_purge_expired(*, now=None, batch=PURGE_BATCH) -> int:
    """Purge every trashed email past its purge_after; returns how many went."""
    now = now or timezone.now()
    purged = 0
    while True:
        ids = list(Email.objects.filter(folder=Folder.TRASH, purge_after__lte=now).values_list("pk", flat=True)[:batch])
        if not ids:
            return purged
        for email in Email.objects.filter(pk__in=ids):
            email_purge(email=email)
            purged += 1
