"""Which conversation a new message belongs to, inside one mailbox."""

from datetime import timedelta

from django.db import connection
from django.db.models import F
from django.db.models.functions import Greatest

from mailboxes.models import Mailbox, Thread
from mailboxes.inbound.parsing import normalize_subject

# Without References/In-Reply-To, a matching subject joins a thread only if it was active this recently.
SUBJECT_THREADING_WINDOW = timedelta(days=7)


def thread_find_or_create(*, mailbox, message_id, in_reply_to, references, subject, at):
    """The id of the message's thread, created or bumped (count, latest time).

    Threads by Message-ID / In-Reply-To / References; the subject fallback applies only to messages
    that carry neither header.
    """
    query = thread_lookup_query(mailbox=mailbox, message_id=message_id, in_reply_to=in_reply_to,
                                references=references, subject=subject, at=at)
    thread_id = None
    if query is not None:
        with connection.cursor() as cursor:
            cursor.execute(*query)
            row = cursor.fetchone()
        thread_id = row[0] if row else None
    return thread_join(mailbox=mailbox, thread_id=thread_id, subject=subject, at=at)


def thread_lookup_query(*, mailbox, message_id, in_reply_to, references, subject, at):
    """(sql, params) of one query whose single value is the id of the thread the message belongs to (NULL or no
    row when none); None when the message has nothing to look up by. A caller may run it as a scalar subquery
    beside its own (ingest asks it with the duplicate check, in one round trip); thread_join takes the answer."""
    linked_ids = [i for i in (*references, in_reply_to) if i]
    candidates = [i for i in (*linked_ids, message_id) if i]
    normalized = normalize_subject(subject)[:998]
    use_subject = not linked_ids and bool(normalized)
    return _thread_lookup_sql(mailbox=mailbox, message_ids=candidates,
                              subject=normalized if use_subject else None, since=at - SUBJECT_THREADING_WINDOW)


def thread_join(*, mailbox, thread_id, subject, at):
    """Bump the thread thread_lookup_query found (`thread_id`, a raw database value or None), or create one;
    returns its id."""
    if thread_id is None:
        return Thread.objects.create(account_id=mailbox.account_id, mailbox=mailbox,
                                     subject=normalize_subject(subject)[:998], message_count=1, last_message_at=at).pk
    thread_id = Thread._meta.pk.to_python(thread_id)
    Thread.objects.filter(pk=thread_id).update(message_count=F("message_count") + 1,
                                               last_message_at=Greatest(F("last_message_at"), at))
    return thread_id


def _thread_lookup_sql(*, mailbox, message_ids, subject, since):
    """The thread of the newest stored message among `message_ids`; failing that (when `subject` is
    given) the most recently active thread since `since` with that subject, case-insensitively.

    One written-out query for both: it runs for every message stored, and the ORM's two queries cost
    two round trips and more time composing than the database spends answering.
    """
    branches, params = [], []
    mailbox_key = Mailbox._meta.pk.get_db_prep_value(mailbox.pk, connection)
    if message_ids:
        branches.append("SELECT thread_id, 0 AS preference, received_at AS at FROM mailboxes_email"
                        f" WHERE mailbox_id = %s AND message_id IN ({', '.join(['%s'] * len(message_ids))})")
        params += [mailbox_key, *message_ids]
    if subject:
        # UPPER() = UPPER() is how the ORM's iexact reads on PostgreSQL, and what its LIKE does on SQLite.
        branches.append("SELECT id AS thread_id, 1 AS preference, last_message_at AS at FROM mailboxes_thread"
                        " WHERE mailbox_id = %s AND UPPER(subject) = UPPER(%s) AND last_message_at >= %s")
        params += [mailbox_key, subject, connection.ops.adapt_datetimefield_value(since)]
    if not branches:
        return None
    return (f"SELECT thread_id FROM ({' UNION ALL '.join(branches)}) AS found"
            " ORDER BY preference, at DESC LIMIT 1", params)
