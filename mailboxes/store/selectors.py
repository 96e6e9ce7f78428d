"""Reading the mail store: emails, threads and attachments, always restricted to the caller's account.

Every list is a keyset page (core.pagination): newest first by (received_at, id), or
(last_message_at, id) for threads, continued with an opaque cursor.
"""

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Substr

from mailboxes.store.folders import LIST_DEFERRED, in_folder_view
from mailboxes.models import Attachment, Email, Folder, Thread
from mailboxes.selectors import own_mailbox
from core.errors import Invalid, NotFound
from core.pagination import Page, keyset_page
from core.tenancy import within_mailboxes

def _folder_emails(*, account, mailbox, folder, mailbox_ids=None):
    """The emails of one folder view: of one mailbox, or of every mailbox of the account (among `mailbox_ids`, a
    limited token's) when `mailbox` is None (the unified views: all inboxes, all starred…)."""
    if mailbox is None:
        emails = within_mailboxes(Email.objects.filter(account=account), mailbox_ids)
    else:
        emails = Email.objects.filter(mailbox=own_mailbox(account=account, mailbox=mailbox, mailbox_ids=mailbox_ids))
    return in_folder_view(emails, (folder or Folder.INBOX).upper())


def email_list(*, account, mailbox, folder=Folder.INBOX, cursor=None, before=None, limit=50, mailbox_ids=None) -> Page:
    """One page of a folder (or the STARRED view: starred mail outside TRASH and SPAM), newest first; `before`
    (a page's prev_cursor) pages back towards the newest. `mailbox=None` lists the folder across the account."""
    emails = _folder_emails(account=account, mailbox=mailbox, folder=folder, mailbox_ids=mailbox_ids)
    emails = emails.defer(*LIST_DEFERRED)
    if mailbox is None:
        emails = emails.select_related("mailbox__domain")
    return keyset_page(emails, cursor=cursor, before=before, limit=limit)


COUNT_CAP = 10_000


def email_count(*, account, mailbox, folder=Folder.INBOX, cap=COUNT_CAP) -> tuple[int, bool]:
    """How many emails a folder view holds, counted up to `cap`: (count, whether there are more than cap).

    The mailbox keeps counters for all its mail and its unread mail, not per folder; this count walks the
    (mailbox, folder, received_at) index and stops after `cap` rows, so a huge folder costs no more than that."""
    emails = _folder_emails(account=account, mailbox=mailbox, folder=folder)
    count = emails.order_by().values("pk")[: cap + 1].count()
    return min(count, cap), count > cap


def unread_counts(*, account, folders, mailbox=None, cap=COUNT_CAP) -> dict:
    """Unread emails in each of `folders` (folder views: STARRED too), of one mailbox or of the whole account,
    as {"INBOX": 3, …}; views without unread mail are left out. Each count stops at `cap` (shown "10,000+")."""
    emails = Email.objects.filter(account=account, is_read=False)
    if mailbox is not None:
        emails = emails.filter(mailbox=own_mailbox(account=account, mailbox=mailbox))
    counts = {folder: in_folder_view(emails, folder).order_by().values("pk")[: cap + 1].count() for folder in folders}
    return {folder: count for folder, count in counts.items() if count}


def email_get(*, account, email_id, mailbox_ids=None) -> Email:
    """The account's email with its attachments, or NotFound (the same for missing, foreign and outside
    `mailbox_ids`)."""
    try:
        return (within_mailboxes(Email.objects.defer("search_vector"), mailbox_ids)
                .select_related("mailbox__domain", "thread").prefetch_related("attachments")
                .get(pk=email_id, account=account))
    except (Email.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No email with this id exists in your account.")


MAX_SELECTION = 500


def emails_selected(*, account, email_ids) -> list:
    """The account's emails among `email_ids` (a selection in a list; at most MAX_SELECTION); ids that are
    malformed, missing or another account's are left out."""
    ids = list(dict.fromkeys(str(value) for value in email_ids or ()))
    if len(ids) > MAX_SELECTION:
        raise Invalid(f"Select at most {MAX_SELECTION} emails at a time.", field="ids")
    valid = []
    for value in ids:
        try:
            valid.append(uuid.UUID(value))
        except ValueError:
            continue
    return list(Email.objects.filter(account=account, pk__in=valid).defer(*LIST_DEFERRED).order_by("-received_at", "-id"))


def thread_list(*, account, mailbox, cursor=None, limit=50, mailbox_ids=None) -> Page:
    """Conversations of a mailbox, most recently active first.

    A thread that gets a new message moves to the top; a client paging at that moment simply does
    not meet it again further down (it is never shown twice).
    """
    mailbox = own_mailbox(account=account, mailbox=mailbox, mailbox_ids=mailbox_ids)
    threads = Thread.objects.filter(mailbox=mailbox)
    return keyset_page(threads, cursor=cursor, limit=limit, time_field="last_message_at")


@dataclass
class ThreadDetail:
    thread: Thread
    emails: list


def thread_get_row(*, account, thread_id, mailbox_ids=None) -> Thread:
    try:
        return within_mailboxes(Thread.objects.select_related("mailbox__domain"), mailbox_ids).get(
            pk=thread_id, account=account)
    except (Thread.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No thread with this id exists in your account.")


def thread_get(*, account, thread_id, mailbox_ids=None) -> ThreadDetail:
    """A thread with its messages oldest first, or NotFound."""
    thread = thread_get_row(account=account, thread_id=thread_id, mailbox_ids=mailbox_ids)
    emails = list(thread.emails.defer("search_vector").prefetch_related("attachments").order_by("received_at", "id"))
    return ThreadDetail(thread=thread, emails=emails)


CONVERSATION_SIZE = 25
PREVIEW_CHARS = 20_000


def conversation_get(*, account, email, limit=CONVERSATION_SIZE) -> ThreadDetail:
    """The messages of `email`'s thread a person reads: the newest `limit` of them, oldest first, and `email`
    itself wherever it falls. A thread's size is up to its senders, so the others come without their bodies:
    `text_preview` (the first PREVIEW_CHARS of the text) and `has_html` stand in; `email` is whole."""
    thread = thread_get_row(account=account, thread_id=email.thread_id)
    others = (Email.objects.filter(thread=thread).exclude(pk=email.pk).defer("text", "text_clean", "html", "search_vector")
              .annotate(text_preview=Substr("text", 1, PREVIEW_CHARS), has_html=~Q(html=""))
              .prefetch_related("attachments").order_by("-received_at", "-id")[: max(limit - 1, 0)])
    emails = sorted([email, *others], key=lambda item: (item.received_at, str(item.pk)))
    return ThreadDetail(thread=thread, emails=emails)


def attachment_get(*, account, email_id, index, mailbox_ids=None) -> Attachment:
    """The email's attachment at 0-based `index`, or NotFound."""
    email = email_get(account=account, email_id=email_id, mailbox_ids=mailbox_ids)
    try:
        position = int(index)
    except (TypeError, ValueError):
        raise Invalid("index must be a whole number (0 for the first attachment).", field="index")
    attachment = next((a for a in email.attachments.all() if a.position == position), None)
    if attachment is None:
        raise NotFound(f"This email has no attachment number {position}; it has {len(email.attachments.all())}.")
    return attachment
