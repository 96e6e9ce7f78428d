"""Which emails a folder view shows, for the folder lists and for search alike."""

from mailboxes.store.counters import UNCOUNTED_FOLDERS
from mailboxes.models import Folder
from core.errors import Invalid

STARRED = "STARRED"  # a view of the starred flag, not a folder an email sits in
FOLDER_VIEWS = (*Folder.values, STARRED)
# Bulky columns a list or a search result never shows.
LIST_DEFERRED = ("text", "text_clean", "html", "search_vector", "defects", "recipients_text")


def in_folder_view(emails, folder):
    """Restrict emails to a folder, or to STARRED: starred mail outside TRASH and SPAM."""
    if folder == STARRED:
        return emails.filter(is_starred=True).exclude(folder__in=UNCOUNTED_FOLDERS)
    if folder not in Folder.values:
        raise Invalid(f"folder must be one of {', '.join(FOLDER_VIEWS)}.", field="folder")
    return emails.filter(folder=folder)
