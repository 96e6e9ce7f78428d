"""The search entry of an email: what is indexed (four weighted fields) and keeping it current."""

import unicodedata

from django.db import connection

from mailboxes.store.search import postgres, sqlite

# Per field, so one huge newsletter or PDF cannot make a document past PostgreSQL's 1 MB tsvector cap.
MAX_INDEXED_CHARS = 100_000


def search_document(*, subject, from_name, from_address, body, attachment_texts):
    """The four weighted fields of an email's search entry, each capped at MAX_INDEXED_CHARS."""
    address = from_address or ""
    # Split the address too, so "alice" or "example" find alice@example.com.
    sender = " ".join([from_name or "", address, address.replace("@", " ").replace(".", " ")])
    return {
        "subject": (subject or "")[:MAX_INDEXED_CHARS],
        "sender": sender[:MAX_INDEXED_CHARS],
        "body": (body or "")[:MAX_INDEXED_CHARS],
        "attachments": " ".join(text or "" for text in attachment_texts)[:MAX_INDEXED_CHARS],
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
    return search_document(subject=email.subject, from_name=email.from_name, from_address=email.from_address,
                           body=email.text, attachment_texts=[a.extracted_text for a in email.attachments.all()])


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
