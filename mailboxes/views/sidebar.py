"""The mail pages' sidebar: every mailbox of the account with its unread count, the unified views, and the
folders of the mailbox (or of all mailboxes) being read, with their unread counts."""

from django.urls import reverse

from mailboxes.models import Folder
from mailboxes.selectors import mailbox_list
from mailboxes.store.drafts import draft_count
from mailboxes.store.folders import STARRED
from mailboxes.store.selectors import COUNT_CAP, unread_counts

FOLDERS = [(Folder.INBOX, "Inbox"), (STARRED, "Starred"), (Folder.SENT, "Sent"), (Folder.ARCHIVE, "Archive"),
           (Folder.SPAM, "Spam"), (Folder.TRASH, "Trash")]
FOLDER_LABELS = dict(FOLDERS) | {Folder.DRAFTS: "Imported drafts"}
# Folders whose unread mail the sidebar counts (unread mail in Sent or Trash is nobody's to-do).
COUNTED = (Folder.INBOX, STARRED, Folder.ARCHIVE, Folder.SPAM)


def _shown(count):
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


def mail_sidebar(*, account, mailbox=None, folder=Folder.INBOX, current=None):
    """Context for templates/mailboxes/_sidebar.html. `mailbox` None is the unified view of every mailbox;
    `current` names a page that is not a folder ("drafts", "search", "compose")."""
    mailboxes = list(mailbox_list(account=account))
    unread = unread_counts(account=account, mailbox=mailbox, folders=COUNTED)
    base = reverse("mailboxes:mail", args=[mailbox.id]) if mailbox else reverse("mail:inbox")
    folders = [{"value": value, "label": label, "url": f"{base}?folder={value}",
                "unread": _shown(unread[value]) if unread.get(value) else "",
                "current": current is None and value == folder}
               for value, label in FOLDERS]
    return {"sidebar_mailboxes": [{"mailbox": box, "unread": _shown(box.unread_count) if box.unread_count else "",
                                   "current": mailbox is not None and box.pk == mailbox.pk} for box in mailboxes],
            "sidebar_folders": folders, "sidebar_mailbox": mailbox, "sidebar_current": current,
            "sidebar_total_unread": _shown(sum(box.unread_count for box in mailboxes)),
            "sidebar_drafts": draft_count(account=account, mailbox=mailbox),
            "sidebar_compose_url": reverse("mail:compose") + (f"?from={mailbox.id}" if mailbox else "")}
