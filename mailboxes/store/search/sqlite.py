"""SQLite full-text search: the FTS5 table mailboxes_email_fts, and web-search syntax translated for it.

Web-search syntax ("quoted phrase", -exclude, OR) becomes a safe FTS5 expression.

Mirrors PostgreSQL's websearch_to_tsquery: bare words are ANDed, OR joins its neighbours, a leading
minus excludes. Every term becomes a double-quoted FTS5 string holding only letters and digits, so no
user input can reach FTS5 as syntax (column filters, NEAR, ^, *, unbalanced quotes…) and fail.
"""

import re

from django.db import connection
from django.db.models.expressions import RawSQL

_WORD = re.compile(r"[^\W_]+")


def _terms(query):
    """Yield (negated, text, is_or) for each term of the query."""
    position, length = 0, len(query)
    while position < length:
        char = query[position]
        if char.isspace():
            position += 1
            continue
        negated = char == "-"
        if negated:
            position += 1
            if position >= length:
                break
            char = query[position]
        if char == '"':
            end = query.find('"', position + 1)
            end = length if end < 0 else end
            yield negated, query[position + 1:end], False
            position = end + 1
            continue
        end = position
        while end < length and not query[end].isspace() and query[end] != '"':
            end += 1
        word = query[position:end]
        yield negated, word, (not negated and word.lower() == "or")
        position = end


def _phrase(text):
    tokens = _WORD.findall(text)
    return '"' + " ".join(tokens) + '"' if tokens else None


def fts5_expression(query):
    """(include, exclude): FTS5 MATCH expressions for rows to keep and rows to drop; either may be None."""
    groups, negatives, pending_or = [], [], False
    for negated, text, is_or in _terms(query or ""):
        if is_or:
            pending_or = bool(groups)
            continue
        phrase = _phrase(text)
        if phrase is None:
            continue
        if negated:
            negatives.append(phrase)
        elif pending_or:
            groups[-1].append(phrase)
        else:
            groups.append([phrase])
        pending_or = False
    include = " AND ".join("(" + " OR ".join(group) + ")" for group in groups) or None
    exclude = " OR ".join(negatives) or None
    return include, exclude


def index_write(*, email_id, document):
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


def index_delete(*, email_id):
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


def text_filter(queryset, query):
    include, exclude = fts5_expression(query)
    if include is None and exclude is None:
        return queryset.none()  # nothing searchable in it (only punctuation, say)
    if include is not None:
        queryset = queryset.filter(id__in=_fts_ids(include))
    if exclude is not None:
        queryset = queryset.exclude(id__in=_fts_ids(exclude))
    return queryset
