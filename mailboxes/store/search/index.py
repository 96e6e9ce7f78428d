"""The search entry of an email: what is indexed (four weighted fields) and keeping it current."""

import re
import unicodedata
from itertools import islice

from django.db import connection

from mailboxes.inbound.parsing import safe_filename
from mailboxes.store.search import postgres, sqlite

# Per field, so one huge newsletter or PDF cannot make a document past PostgreSQL's 1 MB tsvector cap.
MAX_INDEXED_CHARS = 100_000
# Attachment names go first in their field, so extracted text never pushes them out; these bound them
# (at most ~3 × 255 characters a name, so the names of one email stay well under MAX_INDEXED_CHARS).
MAX_INDEXED_ATTACHMENT_NAMES = 50
MAX_INDEXED_NAME_CHARS = 255
_NAME_WORD = re.compile(r"[^\W_]+")


def attachment_names_text(filenames):
    """The attachments' display names as indexed: each whole, without its extension, and as its words.

    PostgreSQL reads "Q3-invoice-ACME.pdf" as one file-name token; the whole name lets that exact
    query match, the words let "invoice" or "acme" match as well (SQLite splits either way).
    """
    parts = []
    for filename in islice(filenames, MAX_INDEXED_ATTACHMENT_NAMES):
        name = safe_filename(filename or "")[:MAX_INDEXED_NAME_CHARS].strip()
        if not name:
            continue
        stem, dot, _ = name.rpartition(".")
        parts += [name, stem] if dot and stem else [name]
        parts.append(" ".join(_NAME_WORD.findall(name)))
    return "\n".join(parts)


def search_document(*, subject, from_name, from_address, body, attachment_texts, attachment_names=()):
    """The four weighted fields of an email's search entry, each capped at MAX_INDEXED_CHARS.

    The attachments field holds the attachments' names (attachment_names_text), then their text.
    """
    address = from_address or ""
    # Split the address too, so "alice" or "example" find alice@example.com.
    sender = " ".join([from_name or "", address, address.replace("@", " ").replace(".", " ")])
    attachments = [attachment_names_text(attachment_names), *(text or "" for text in attachment_texts)]
    return {
        "subject": (subject or "")[:MAX_INDEXED_CHARS],
        "sender": sender[:MAX_INDEXED_CHARS],
        "body": (body or "")[:MAX_INDEXED_CHARS],
        "attachments": " ".join(filter(None, attachments))[:MAX_INDEXED_CHARS],
    }


def search_fold(text):
    """The form recipients_text is stored and matched in: casefolded (ß = ss, Σ = σ), one Unicode form."""
    return unicodedata.normalize("NFKC", " ".join(str(text or "").split()).casefold())


def recipients_search_text(*address_lists):
    """Email.recipients_text of address lists ({"address", "name"} dicts): one value per line, so a
    match never spans two recipients."""
    values = (entry.get(key) for entries in address_lists for entry in entries or () if isinstance(entry, dict)
              for key in ("name", "address"))
    return "\n".join(filter(None, (search_fold(value) for value in values)))


def _document(email):
    attachments = list(email.attachments.all())
    return search_document(subject=email.subject, from_name=email.from_name, from_address=email.from_address,
                           body=email.text, attachment_texts=[a.extracted_text for a in attachments],
                           attachment_names=[a.filename for a in attachments])


def search_index_on_insert(*, email, document) -> bool:
    """Give an unsaved email its search entry through its own INSERT, where the entry lives in the row.

    True on PostgreSQL (search_vector is set to an expression the INSERT evaluates), which spares an
    UPDATE that would write the row and all its indexes a second time. False elsewhere: the caller
    then runs search_index_document once the row exists.
    """
    if connection.vendor != "postgresql":
        return False
    email.search_vector = postgres.vector(document)
    return True


def search_index_email(*, email):
    """Write (or rewrite) the email's search entry; call after its text or attachments change."""
    search_index_document(email_id=email.pk, document=_document(email))


def search_index_document(*, email_id, document):
    """Write (or rewrite) the search entry of a stored email from a document built by search_document."""
    if connection.vendor == "postgresql":
        postgres.index_write(email_id=email_id, document=document)
    elif connection.vendor == "sqlite":
        sqlite.index_write(email_id=email_id, document=document)


def search_unindex_email(*, email_id):
    """Drop an email's search entry (PostgreSQL's lives in the row and goes with it)."""
    if connection.vendor == "sqlite":
        sqlite.index_delete(email_id=email_id)
