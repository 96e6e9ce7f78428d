"""Full-text search over the mail store: subject, sender, body text and attachment text.

PostgreSQL: a stored tsvector (Email.search_vector, GIN-indexed) queried with websearch_to_tsquery.
SQLite: an FTS5 table (mailboxes_email_fts) queried with a safe translation of the same syntax.
Results are newest first and paginate by the shared keyset cursor.
"""

import unicodedata
from datetime import date, datetime, time, timezone

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from mailboxes.counters import UNCOUNTED_FOLDERS
from mailboxes.folder_views import LIST_DEFERRED, in_folder_view
from mailboxes.fts_query import fts5_expression
from mailboxes.models import Email
from mailboxes.search_postgres import search_page_postgres
from mailboxes.selectors import own_mailbox
from qmailing.datetimes import as_utc
from qmailing.errors import Invalid
from qmailing.pagination import clean_limit, keyset_page

MAX_QUERY_LENGTH = 500
# Per field, so one huge newsletter or PDF cannot make a document past PostgreSQL's 1 MB tsvector cap.
MAX_INDEXED_CHARS = 100_000


def _config():
    return settings.QMAILING_SEARCH_CONFIG


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


def _vector(document):
    """PostgreSQL's weighted tsvector of a document: subject A, sender B, body C, attachments D."""
    # Written out rather than four SearchVector expressions: composing those costs ~1 ms per message.
    config = _config()
    return RawSQL(
        "setweight(to_tsvector(%s::regconfig, %s), 'A') || setweight(to_tsvector(%s::regconfig, %s), 'B')"
        " || setweight(to_tsvector(%s::regconfig, %s), 'C') || setweight(to_tsvector(%s::regconfig, %s), 'D')",
        (config, document["subject"], config, document["sender"], config, document["body"], config,
         document["attachments"]),
        output_field=SearchVectorField(),
    )


def search_index_on_insert(*, email, document) -> bool:
    """Give an unsaved email its search entry through its own INSERT, where the entry lives in the row.

    True on PostgreSQL (search_vector is set to an expression the INSERT evaluates), which spares an
    UPDATE that would write the row and all its indexes a second time. False elsewhere: the caller
    then runs search_index_document once the row exists.
    """
    if connection.vendor != "postgresql":
        return False
    email.search_vector = _vector(document)
    return True


def search_index_email(*, email):
    """Write (or rewrite) the email's search entry; call after its text or attachments change."""
    search_index_document(email_id=email.pk, document=_document(email))


def search_index_document(*, email_id, document):
    """Write (or rewrite) the search entry of a stored email from a document built by search_document."""
    if connection.vendor == "postgresql":
        Email.objects.filter(pk=email_id).update(search_vector=_vector(document))
    elif connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            key = email_id.hex
            cursor.execute("INSERT OR IGNORE INTO mailboxes_email_fts_map (email_id) VALUES (%s)", [key])
            cursor.execute("SELECT rowid FROM mailboxes_email_fts_map WHERE email_id = %s", [key])
            rowid = cursor.fetchone()[0]
            cursor.execute("DELETE FROM mailboxes_email_fts WHERE rowid = %s", [rowid])
            cursor.execute(
                "INSERT INTO mailboxes_email_fts (rowid, subject, sender, body, attachments) VALUES (%s, %s, %s, %s, %s)",
                [rowid, document["subject"], document["sender"], document["body"], document["attachments"]],
            )


def search_unindex_email(*, email_id):
    """Drop an email's search entry (PostgreSQL's lives in the row and goes with it)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM mailboxes_email_fts WHERE rowid IN (SELECT rowid FROM mailboxes_email_fts_map WHERE email_id = %s)",
                [email_id.hex],
            )
            cursor.execute("DELETE FROM mailboxes_email_fts_map WHERE email_id = %s", [email_id.hex])


def _fts_ids(expression):
    return RawSQL(
        "SELECT m.email_id FROM mailboxes_email_fts f JOIN mailboxes_email_fts_map m ON m.rowid = f.rowid"
        " WHERE mailboxes_email_fts MATCH %s",
        (expression,),
    )


def _text_filter(queryset, query):
    if connection.vendor == "postgresql":
        return queryset.filter(search_vector=SearchQuery(query, search_type="websearch", config=_config()))
    include, exclude = fts5_expression(query)
    if include is None and exclude is None:
        return queryset.none()  # nothing searchable in it (only punctuation, say)
    if include is not None:
        queryset = queryset.filter(id__in=_fts_ids(include))
    if exclude is not None:
        queryset = queryset.exclude(id__in=_fts_ids(exclude))
    return queryset


def _bound(value, *, field, end):
    """A date_from / date_to argument as an aware UTC date-time, or None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            raise Invalid(f"{field} must be a date (YYYY-MM-DD) or an ISO 8601 date-time.", field=field)
    if isinstance(value, date) and not isinstance(value, datetime):
        # A bare date covers that whole UTC day, on either end of the range.
        value = datetime.combine(value, time.max if end else time.min, tzinfo=timezone.utc)
    if not isinstance(value, datetime):
        raise Invalid(f"{field} must be a date or a date-time.", field=field)
    try:
        return as_utc(value)
    except (ValueError, OverflowError) as exc:
        raise Invalid(f"{field} is out of range: {exc}.", field=field)


def email_search(*, account, query, mailbox=None, folder=None, from_=None, to=None, unread=None,
                 has_attachment=None, date_from=None, date_to=None, cursor=None, limit=50):
    """The account's emails matching `query` (web-search syntax) and the filters, newest first.

    Without a mailbox it spans every mailbox of the account; without a folder it leaves out TRASH
    and SPAM, as mail clients do. An empty query with filters lists what the filters match.
    """
    query = (query or "").replace("\x00", " ").strip()
    if len(query) > MAX_QUERY_LENGTH:
        raise Invalid(f"The search query can be at most {MAX_QUERY_LENGTH} characters.", field="query")
    emails = Email.objects.filter(account=account).defer(*LIST_DEFERRED)
    if mailbox is not None:
        emails = emails.filter(mailbox=own_mailbox(account=account, mailbox=mailbox))
    if folder:
        emails = in_folder_view(emails, folder)
    else:
        emails = emails.exclude(folder__in=UNCOUNTED_FOLDERS)
    if from_:
        emails = emails.filter(Q(from_address__icontains=from_.strip()) | Q(from_name__icontains=from_.strip()))
    if to and search_fold(to):
        emails = emails.filter(recipients_text__contains=search_fold(to))
    if unread is not None:
        emails = emails.filter(is_read=not unread)
    if has_attachment is not None:
        emails = emails.filter(has_attachments=bool(has_attachment))
    start, end = _bound(date_from, field="date_from", end=False), _bound(date_to, field="date_to", end=True)
    if start:
        emails = emails.filter(received_at__gte=start)
    if end:
        emails = emails.filter(received_at__lte=end)
    emails = emails.select_related("mailbox__domain")
    if not query:
        return keyset_page(emails, cursor=cursor, limit=limit)
    if connection.vendor == "postgresql":
        return search_page_postgres(scope=emails, matching=_text_filter(emails, query),
                                    tsquery_sql="websearch_to_tsquery(%s::regconfig, %s)",
                                    tsquery_params=(_config(), query), cursor=cursor, limit=clean_limit(limit))
    return keyset_page(_text_filter(emails, query), cursor=cursor, limit=limit)
