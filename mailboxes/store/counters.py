"""Mailbox counters: message_count, unread_count, storage_used — kept exact by every service.

Definitions (one place): every stored email counts as a message and its raw size as storage;
an email is unread-counted when it is not read and sits outside TRASH and SPAM.
Updates are F-expressions in the caller's transaction; `mailbox_counters_recompute` is the reference.
"""

from django.db import connection
from django.db.models import Q, Sum

from mailboxes.models import Email, Folder, Mailbox

UNCOUNTED_FOLDERS = (Folder.TRASH, Folder.SPAM)


def counts_as_unread(*, is_read, folder):
    return not is_read and folder not in UNCOUNTED_FOLDERS


def counters_apply(*, mailbox_id, messages=0, unread=0, storage=0):
    """Add deltas to a mailbox's counters atomically (never below zero).

    Written out (GREATEST, MAX on SQLite, as the ORM's Greatest reads): every stored message runs it, and the
    ORM spends longer composing the UPDATE than the database running it.
    """
    statement = counters_update_sql(mailbox_id=mailbox_id, messages=messages, unread=unread, storage=storage)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def counters_update_sql(*, mailbox_id, messages=0, unread=0, storage=0):
    """(sql, params) of counters_apply's UPDATE, None when nothing changes; a caller may add conditions with
    " AND …" (ingest runs it inside its duplicate check on PostgreSQL)."""
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    assignments, params = [], []
    for field, delta in (("message_count", messages), ("unread_count", unread), ("storage_used", storage)):
        if delta:
            column = connection.ops.quote_name(Mailbox._meta.get_field(field).column)
            assignments.append(f"{column} = {greatest}({column} + %s, 0)")
            params.append(int(delta))
    if not assignments:
        return None
    return (f"UPDATE {connection.ops.quote_name(Mailbox._meta.db_table)} SET {', '.join(assignments)}"
            f" WHERE {connection.ops.quote_name(Mailbox._meta.pk.column)} = %s",
            [*params, Mailbox._meta.pk.get_db_prep_value(mailbox_id, connection)])


def counters_on_store_sql(*, mailbox_id, size, is_read, folder):
    """counters_update_sql for storing one email (what counters_on_store applies)."""
    return counters_update_sql(mailbox_id=mailbox_id, messages=1, storage=size,
                               unread=int(counts_as_unread(is_read=is_read, folder=folder)))


def counters_on_store(email):
    counters_apply(mailbox_id=email.mailbox_id, messages=1, storage=email.size,
                   unread=int(counts_as_unread(is_read=email.is_read, folder=email.folder)))


def counters_on_remove(email):
    counters_apply(mailbox_id=email.mailbox_id, messages=-1, storage=-email.size,
                   unread=-int(counts_as_unread(is_read=email.is_read, folder=email.folder)))


def counters_on_change(email, *, was_read, was_folder):
    before = counts_as_unread(is_read=was_read, folder=was_folder)
    after = counts_as_unread(is_read=email.is_read, folder=email.folder)
    counters_apply(mailbox_id=email.mailbox_id, unread=int(after) - int(before))


def mailbox_counters_recompute(*, mailbox):
    """Recount from the stored emails (the reference the deltas must always agree with)."""
    emails = Email.objects.filter(mailbox=mailbox)
    totals = emails.aggregate(storage=Sum("size"))
    mailbox.message_count = emails.count()
    mailbox.unread_count = emails.filter(Q(is_read=False) & ~Q(folder__in=UNCOUNTED_FOLDERS)).count()
    mailbox.storage_used = totals["storage"] or 0
    mailbox.save(update_fields=["message_count", "unread_count", "storage_used"])
    return mailbox
