"""Searching the mail store: the account's emails matching a query and filters, newest first, by keyset page."""

import re
from datetime import date, datetime, time, timezone

from django.db import connection
from django.db.models import Q

from mailboxes.models import Email
from mailboxes.selectors import own_mailbox
from mailboxes.store.counters import UNCOUNTED_FOLDERS
from mailboxes.store.folders import LIST_DEFERRED, in_folder_view
from mailboxes.store.search import postgres, sqlite
from mailboxes.store.search.index import search_fold
from core.datetimes import as_utc
from core.errors import Invalid
from core.pagination import clean_limit, keyset_page
from core.tenancy import within_mailboxes

MAX_QUERY_LENGTH = 500
MAX_QUERY_TERMS = 32
# "- - -x" or "---x" is a NOT of a NOT of …: PostgreSQL's tsquery stack overflows past 32 of them,
# and a double negation never means anything a person wants. Any run of minus signs is one.
_NEGATION_RUN = re.compile(r"-(?:\s*-)+")


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
                 has_attachment=None, date_from=None, date_to=None, cursor=None, limit=50, mailbox_ids=None):
    """The account's emails matching `query` (web-search syntax) and the filters, newest first.

    Without a mailbox it spans every mailbox of the account (of `mailbox_ids`, a limited token's); without a
    folder it leaves out TRASH and SPAM, as mail clients do. An empty query with filters lists what the filters match.
    """
    query = (query or "").replace("\x00", " ").strip()
    if len(query) > MAX_QUERY_LENGTH:
        raise Invalid(f"The search query can be at most {MAX_QUERY_LENGTH} characters.", field="query")
    query = _NEGATION_RUN.sub("-", query)
    if len(query.split()) > MAX_QUERY_TERMS:
        raise Invalid(f"The search query can have at most {MAX_QUERY_TERMS} words and operators.", field="query")
    emails = within_mailboxes(Email.objects.filter(account=account), mailbox_ids).defer(*LIST_DEFERRED)
    if mailbox is not None:
        emails = emails.filter(mailbox=own_mailbox(account=account, mailbox=mailbox, mailbox_ids=mailbox_ids))
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
        return postgres.search_page(scope=emails, query=query, cursor=cursor, limit=clean_limit(limit))
    return keyset_page(sqlite.text_filter(emails, query), cursor=cursor, limit=limit)
