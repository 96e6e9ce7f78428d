"""Keyset pagination shared by every list: an opaque cursor over (timestamp, id), never OFFSET.

A cursor is url-safe base64 (no padding) of compact JSON `{"v": 1, "t": "<ISO-8601 UTC>", "i": "<uuid>"}`
naming the last row of the previous page. The next page holds rows strictly older than that
position in the (timestamp DESC, id DESC) order, so rows that arrive meanwhile (newer) never shift it.

Paging back ("Newer", the dashboard) uses the same cursors the other way: `before` names the first row
of the page being left, and the page shown holds the `limit` rows just newer than it. Each page carries
both ends (`prev_cursor`, `next_cursor`), so neither direction needs a stack of cursors in the URL.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.db.models import Q

from core.datetimes import as_utc
from core.errors import Invalid

DEFAULT_LIMIT = 50
# Lists served to agents (REST and MCP) are read by a model, and a page is paid for in its context: 20 summaries.
AGENT_DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_VERSION = 1
CURSOR_MAX_CHARS = 600  # a mailbox cursor names an address (a domain is up to 253 characters)


@dataclass
class Page:
    items: list = field(default_factory=list)
    next_cursor: str | None = None
    prev_cursor: str | None = None  # pass as `before` for the newer page; None on the newest page


def cursor_encode(*, position: datetime, id) -> str:
    data = {"v": CURSOR_VERSION, "t": position.astimezone(timezone.utc).isoformat(), "i": str(id)}
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    """(timestamp, id) of a cursor, or Invalid on anything that is not a cursor this module made."""
    bad = Invalid("The cursor is not valid. Pass next_cursor from the previous page unchanged.", field="cursor")
    if not isinstance(cursor, str) or len(cursor) > 200:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if data.get("v") != CURSOR_VERSION:
            raise ValueError("version")
        position = datetime.fromisoformat(data["t"])
        if position.tzinfo is None:
            raise ValueError("naive")
        # A forged offset or year would otherwise fail only later, in the query, as a 500.
        return as_utc(position), uuid.UUID(data["i"])
    except (ValueError, OverflowError, KeyError, TypeError, AttributeError, UnicodeError, binascii.Error):
        raise bad


def clean_limit(limit, *, maximum=MAX_LIMIT) -> int:
    try:
        value = int(limit if limit is not None else DEFAULT_LIMIT)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= maximum:
        raise Invalid(f"limit must be a whole number from 1 to {maximum}.", field="limit")
    return value


def keyset_after(queryset, *, cursor=None, time_field="received_at"):
    """`queryset` newest first by (time_field, id), restricted to rows after `cursor`; not sliced."""
    queryset = queryset.order_by(f"-{time_field}", "-id")
    if cursor:
        position, last_id = cursor_decode(cursor)
        # The redundant `<=` bound lets the database start the index scan at the cursor instead of
        # filtering every newer row (what makes deep pages as cheap as the first one).
        queryset = queryset.filter(**{f"{time_field}__lte": position}).filter(
            Q(**{f"{time_field}__lt": position}) | Q(**{time_field: position, "id__lt": last_id})
        )
    return queryset


def page_of(rows, *, limit, time_field="received_at") -> Page:
    """A Page from up to limit + 1 rows in keyset order: the extra row only says that more follow."""
    rows = list(rows)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = cursor_encode(position=getattr(last, time_field), id=last.pk)
    return Page(items=rows, next_cursor=next_cursor)


def keyset_before(queryset, *, before, time_field="received_at"):
    """`queryset` restricted to rows newer than the `before` cursor, nearest to it first (oldest first); not sliced."""
    position, first_id = cursor_decode(before)
    return queryset.order_by(time_field, "id").filter(**{f"{time_field}__gte": position}).filter(
        Q(**{f"{time_field}__gt": position}) | Q(**{time_field: position, "id__gt": first_id})
    )


def _cursor_of(row, time_field):
    return cursor_encode(position=getattr(row, time_field), id=row.pk)


def keyset_page(queryset, *, cursor=None, before=None, limit=DEFAULT_LIMIT, time_field="received_at") -> Page:
    """One page of `queryset` newest first by (time_field, id): continuing after `cursor` (older), or the page
    just newer than `before` (a page's prev_cursor). When fewer than `limit` rows are newer than `before`,
    that is the top of the list, and the newest page comes back whole (with no prev_cursor)."""
    limit = clean_limit(limit)
    if cursor and before:
        raise Invalid("Pass cursor (older) or before (newer), not both.", field="before")
    if before:
        rows = list(keyset_before(queryset, before=before, time_field=time_field)[: limit + 1])
        if len(rows) > limit:
            rows = list(reversed(rows[:limit]))
            return Page(items=rows, next_cursor=_cursor_of(rows[-1], time_field), prev_cursor=_cursor_of(rows[0], time_field))
        cursor = None  # the top: show the newest page
    page = page_of(keyset_after(queryset, cursor=cursor, time_field=time_field)[: limit + 1], limit=limit, time_field=time_field)
    if cursor:
        # Rows newer than this page exist (the pages already seen); an empty page past the end goes back by its cursor.
        page.prev_cursor = _cursor_of(page.items[0], time_field) if page.items else cursor
    return page


def ordered_page(queryset, *, fields, cursor=None, limit=DEFAULT_LIMIT) -> Page:
    """One page of `queryset` in ascending order of the text `fields` (then id), continuing after `cursor`: for lists
    read alphabetically (mailboxes by address). Its cursor is opaque like the others (`{"v", "o": [values], "i"}`),
    and neither kind is accepted in place of the other."""
    limit = clean_limit(limit)
    queryset = queryset.order_by(*fields, "id")
    if cursor:
        values, last_id = _ordered_cursor_decode(cursor, len(fields))
        after = Q()
        for index, name in enumerate(fields):  # (f1, f2, ..., id) > (v1, v2, ..., last_id), one prefix at a time
            equal = {fields[before]: values[before] for before in range(index)}
            after |= Q(**equal, **{f"{name}__gt": values[index]})
        after |= Q(**dict(zip(fields, values)), id__gt=last_id)
        queryset = queryset.filter(after)
    rows = list(queryset[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _ordered_cursor_encode([_value_of(rows[-1], name) for name in fields], rows[-1].pk)
    return Page(items=rows, next_cursor=next_cursor)


def _value_of(row, name):
    for part in name.split("__"):
        row = getattr(row, part)
    return row


def _ordered_cursor_encode(values, id):
    raw = json.dumps({"v": CURSOR_VERSION, "o": values, "i": str(id)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _ordered_cursor_decode(cursor, count):
    bad = Invalid("The cursor is not valid. Pass next_cursor from the previous page unchanged.", field="cursor")
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_CHARS:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii")))
        values = data["o"]
        if data.get("v") != CURSOR_VERSION or not isinstance(values, list) or len(values) != count \
                or not all(isinstance(value, str) for value in values):
            raise ValueError("shape")
        return values, uuid.UUID(data["i"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeError, binascii.Error):
        raise bad
