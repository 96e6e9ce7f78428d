"""Full-text search over the mail store: subject, sender, body text, attachment names and attachment text.

PostgreSQL: a stored tsvector (Email.search_vector, GIN-indexed) queried with websearch_to_tsquery
(postgres.py). SQLite: an FTS5 table (mailboxes_email_fts) queried with a safe translation of the same
syntax (sqlite.py). What is indexed and keeping it current: index.py. The search itself: selectors.py.
Results are newest first and paginate by the shared keyset cursor.
"""

from mailboxes.store.search.index import (MAX_INDEXED_CHARS, attachment_names_text, recipients_search_text,
                                          search_document, search_fold, search_index_document, search_index_email,
                                          search_index_on_insert, search_unindex_email)
from mailboxes.store.search.selectors import MAX_QUERY_LENGTH, email_search

__all__ = ["MAX_INDEXED_CHARS", "MAX_QUERY_LENGTH", "attachment_names_text", "email_search", "recipients_search_text",
           "search_document", "search_fold", "search_index_document", "search_index_email", "search_index_on_insert",
           "search_unindex_email"]
