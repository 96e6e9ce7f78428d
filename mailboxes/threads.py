"""Which conversation a new message belongs to, inside one mailbox."""

from datetime import timedelta

from django.db.models import F
from django.db.models.functions import Greatest

from mailboxes.models import Email, Thread
from mailboxes.parsing import normalize_subject

# Without References/In-Reply-To, a matching subject joins a thread only if it was active this recently.
SUBJECT_THREADING_WINDOW = timedelta(days=7)


def thread_find_or_create(*, mailbox, message_id, in_reply_to, references, subject, at):
    """The id of the message's thread, created or bumped (count, latest time).

    Threads by Message-ID / In-Reply-To / References; the subject fallback applies only to messages
    that carry neither header.
    """
    linked_ids = [i for i in (*references, in_reply_to) if i]
    candidates = [i for i in (*linked_ids, message_id) if i]
    thread_id = None
    if candidates:
        thread_id = (Email.objects.filter(mailbox=mailbox, message_id__in=candidates)
                     .order_by("-received_at").values_list("thread_id", flat=True).first())
    normalized = normalize_subject(subject)[:998]
    if thread_id is None and not linked_ids and normalized:
        thread_id = (Thread.objects.filter(mailbox=mailbox, subject__iexact=normalized,
                                           last_message_at__gte=at - SUBJECT_THREADING_WINDOW)
                     .order_by("-last_message_at").values_list("id", flat=True).first())
    if thread_id is None:
        return Thread.objects.create(account_id=mailbox.account_id, mailbox=mailbox, subject=normalized,
                                     message_count=1, last_message_at=at).pk
    Thread.objects.filter(pk=thread_id).update(message_count=F("message_count") + 1,
                                               last_message_at=Greatest(F("last_message_at"), at))
    return thread_id
