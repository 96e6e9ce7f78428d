"""PostgreSQL full-text search: the stored, weighted tsvector, and the plan of a search page in two phases.

Walking the (received_at, id) index and testing each row's tsvector is fastest when matches are
common: the page fills after a few hundred rows. When they are rare (or absent) the same walk reads
the whole mailbox. So the first phase walks only the newest RECENT_WINDOW rows of the scope; if the
page is not full by then, the second phase asks the GIN index for every match in the scope and sorts
just those. Both phases apply the same filters and keyset cursor, so a page is the same rows, in the
same order, as the single query it replaces.
"""

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import DatabaseError, connection, transaction
from django.db.models.expressions import RawSQL

from mailboxes.models import Email
from core.errors import Invalid
from core.pagination import keyset_after, page_of

RECENT_WINDOW = 20_000
# jit too: compiling the plan costs more than running it on a few thousand index hits.
INDEX_ONLY_PLANNER = ("enable_seqscan", "enable_indexscan", "jit")
_ORDER = "ORDER BY found.received_at DESC, found.id DESC LIMIT %s"


def _sql(queryset):
    return queryset.query.get_compiler(connection=connection).as_sql()


def _ids(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _recent_matches(scope, *, tsquery_sql, tsquery_params, wanted):
    # LIMIT inside the subquery keeps PostgreSQL from pushing the text test into the index walk,
    # and the outer LIMIT stops the walk as soon as the page is full.
    inner_sql, inner_params = _sql(scope.values_list("id", "received_at", "search_vector")[:RECENT_WINDOW])
    sql = f"SELECT found.id FROM ({inner_sql}) AS found WHERE found.search_vector @@ {tsquery_sql} {_ORDER}"
    return _ids(sql, (*inner_params, *tsquery_params, wanted))


def _indexed_matches(matching, *, wanted):
    # MATERIALIZED fences the filter off from ORDER BY … LIMIT, so the time index is not walked in the
    # hope of stopping early; matches are collected from the indexes, then only they are sorted.
    inner_sql, inner_params = _sql(matching.order_by().values_list("id", "received_at"))
    sql = f"WITH found AS MATERIALIZED ({inner_sql}) SELECT found.id FROM found {_ORDER}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The planner guesses `a & !b` and phrases match a large share of rows and would scan the
            # table; the first phase just showed matches are rare, so only bitmap index scans are allowed.
            for setting in INDEX_ONLY_PLANNER:
                cursor.execute(f"SET LOCAL {setting} = off")
            cursor.execute(sql, (*inner_params, wanted))
            ids = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)  # a read: rolling back its savepoint ends the SET LOCALs
    return ids


def search_page_postgres(*, scope, matching, tsquery_sql, tsquery_params, cursor, limit):
    """One keyset page of `matching` (= `scope` with the text filter), newest first."""
    wanted = limit + 1
    after = keyset_after(scope, cursor=cursor)
    ids = _recent_matches(after, tsquery_sql=tsquery_sql, tsquery_params=tsquery_params, wanted=wanted)
    if len(ids) < wanted:
        ids = _indexed_matches(keyset_after(matching, cursor=cursor), wanted=wanted)
    # Without the text test again: PostgreSQL would combine it with the GIN index for just these ids.
    rows = {row.pk: row for row in scope.order_by().filter(pk__in=ids)}
    return page_of([rows[pk] for pk in ids if pk in rows], limit=limit)


def search_config():
    return settings.QMAILING_SEARCH_CONFIG


def vector(document):
    """PostgreSQL's weighted tsvector of a document: subject A, sender B, body C, attachments D."""
    # Written out rather than four SearchVector expressions: composing those costs ~1 ms per message.
    config = search_config()
    return RawSQL(
        "setweight(to_tsvector(%s::regconfig, %s), 'A') || setweight(to_tsvector(%s::regconfig, %s), 'B')"
        " || setweight(to_tsvector(%s::regconfig, %s), 'C') || setweight(to_tsvector(%s::regconfig, %s), 'D')",
        (config, document["subject"], config, document["sender"], config, document["body"], config,
         document["attachments"]),
        output_field=SearchVectorField(),
    )


def index_write(*, email_id, document):
    Email.objects.filter(pk=email_id).update(search_vector=vector(document))


def text_filter(queryset, query):
    return queryset.filter(search_vector=SearchQuery(query, search_type="websearch", config=search_config()))


def search_page(*, scope, query, cursor, limit):
    """One keyset page of the scope's emails matching `query` (web-search syntax), newest first.

    A query PostgreSQL finds too complex (a program limit, or the tsquery parser's stack) is Invalid,
    whatever shape got it there; the savepoint keeps the caller's transaction usable.
    """
    try:
        with transaction.atomic():
            return search_page_postgres(scope=scope, matching=text_filter(scope, query),
                                        tsquery_sql="websearch_to_tsquery(%s::regconfig, %s)",
                                        tsquery_params=(search_config(), query), cursor=cursor, limit=limit)
    except DatabaseError as exc:
        if not _too_complex(exc):
            raise
        raise Invalid("This search is too complex. Use fewer words and operators.", field="query")


def _too_complex(exc):
    # Program limits are class 54; the tsquery parser's own stack check raises a bare internal error.
    state = str(getattr(exc.__cause__, "sqlstate", "") or "")
    return state.startswith("54") or (state == "XX000" and "tsquery" in str(exc))
