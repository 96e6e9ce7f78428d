"""Reading the mail store: emails, threads and attachments, always restricted to the caller's account.

Every list is a keyset page (qmailing.pagination): newest first by (received_at, id), or
(last_message_at, id) for threads, continued with an opaque cursor.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from mailboxes.store.folders import LIST_DEFERRED, in_folder_view
from mailboxes.models import Attachment, Email, Folder, Thread
from mailboxes.selectors import own_mailbox
from qmailing.errors import Invalid, NotFound
from qmailing.pagination import Page, keyset_page

def email_list(*, account, mailbox, folder=Folder.INBOX, cursor=None, before=None, limit=50) -> Page:
    """One page of a folder (or the STARRED view: starred mail outside TRASH and SPAM), newest first; `before`
    (a page's prev_cursor) pages back towards the newest."""
    mailbox = own_mailbox(account=account, mailbox=mailbox)
    emails = Email.objects.filter(mailbox=mailbox).defer(*LIST_DEFERRED)
    return keyset_page(in_folder_view(emails, (folder or Folder.INBOX).upper()), cursor=cursor, before=before, limit=limit)


COUNT_CAP = 10_000


def email_count(*, account, mailbox, folder=Folder.INBOX, cap=COUNT_CAP) -> tuple[int, bool]:
    """How many emails a folder view holds, counted up to `cap`: (count, whether there are more than cap).

    The mailbox keeps counters for all its mail and its unread mail, not per folder; this count walks the
    (mailbox, folder, received_at) index and stops after `cap` rows, so a huge folder costs no more than that."""
    mailbox = own_mailbox(account=account, mailbox=mailbox)
    emails = in_folder_view(Email.objects.filter(mailbox=mailbox), (folder or Folder.INBOX).upper())
    count = emails.order_by().values("pk")[: cap + 1].count()
    return min(count, cap), count > cap


def email_get(*, account, email_id) -> Email:
    """The account's email with its attachments, or NotFound (the same for missing and foreign)."""
    try:
        return (Email.objects.defer("search_vector").select_related("mailbox__domain", "thread").prefetch_related("attachments")
                .get(pk=email_id, account=account))
    except (Email.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No email with this id exists in your account.")


def thread_list(*, account, mailbox, cursor=None, limit=50) -> Page:
    """Conversations of a mailbox, most recently active first.

    A thread that gets a new message moves to the top; a client paging at that moment simply does
    not meet it again further down (it is never shown twice).
    """
    mailbox = own_mailbox(account=account, mailbox=mailbox)
    threads = Thread.objects.filter(mailbox=mailbox)
    return keyset_page(threads, cursor=cursor, limit=limit, time_field="last_message_at")


@dataclass
class ThreadDetail:
    thread: Thread
    emails: list


def thread_get(*, account, thread_id) -> ThreadDetail:
    """A thread with its messages oldest first, or NotFound."""
    try:
        thread = Thread.objects.select_related("mailbox__domain").get(pk=thread_id, account=account)
    except (Thread.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No thread with this id exists in your account.")
    emails = list(thread.emails.defer("search_vector").prefetch_related("attachments").order_by("received_at", "id"))
    return ThreadDetail(thread=thread, emails=emails)


def attachment_get(*, account, email_id, index) -> Attachment:
    """The email's attachment at 0-based `index`, or NotFound."""
    email = email_get(account=account, email_id=email_id)
    try:
        position = int(index)
    except (TypeError, ValueError):
        raise Invalid("index must be a whole number (0 for the first attachment).", field="index")
    attachment = next((a for a in email.attachments.all() if a.position == position), None)
    if attachment is None:
        raise NotFound(f"This email has no attachment number {position}; it has {len(email.attachments.all())}.")
    return attachment
