"""Translate web-search syntax ("quoted phrase", -exclude, OR) into a safe SQLite FTS5 expression.

Mirrors PostgreSQL's websearch_to_tsquery: bare words are ANDed, OR joins its neighbours, a leading
minus excludes. Every term becomes a double-quoted FTS5 string holding only letters and digits, so no
user input can reach FTS5 as syntax (column filters, NEAR, ^, *, unbalanced quotes…) and fail.
"""

import re

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
