"""The request log: one row of metadata per API/MCP call, kept 30 days (CONTRACT §6).

The generated REST view writes a row once the response is known (`request_log_write`, one INSERT); a
beat job purges old rows in batches (`request_log_purge`); the Developers page reads usage per day and
each token's last use from it. Bodies and results are never logged: there is no column for them.
"""

import datetime as dt

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import RequestLog

RETENTION_DAYS = 30
PURGE_BATCH = 5000
MAX_OPERATION = RequestLog._meta.get_field("operation").max_length


def request_log_write(*, account, token_id, operation, status, duration_ms):
    """Record one call (one INSERT)."""
    RequestLog.objects.create(account=account, token_id=token_id, operation=operation[:MAX_OPERATION],
                              status=status, duration_ms=max(0, int(duration_ms)))


def request_log_purge(*, now=None, batch=PURGE_BATCH):
    """Delete rows older than RETENTION_DAYS, `batch` at a time so no statement locks the table for long."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=RETENTION_DAYS)
    purged = 0
    while True:
        ids = list(RequestLog.objects.filter(created_at__lt=cutoff).order_by().values_list("id", flat=True)[:batch])
        if not ids:
            return purged
        purged += RequestLog.objects.filter(id__in=ids).delete()[0]


def _counted(account):
    # A call counts against the daily cap once it passed the per-minute throttle; the calls refused with
    # 429 (throttle or the cap itself) did not get through. Unauthenticated calls have no account and no row.
    return RequestLog.objects.filter(account=account).exclude(status=429)


def account_usage(*, account, days=RETENTION_DAYS, now=None):
    """Today's calls against the plan's daily cap, and calls per UTC day for the last `days` days (oldest first).

    Returns {"today": int, "cap": int | None, "remaining": int | None, "per_day": [(date, int), …], "total": int}.
    """
    now = now or timezone.now()
    today = now.astimezone(dt.timezone.utc).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.timezone.utc)
    rows = (_counted(account).filter(created_at__gte=start)
            .annotate(day=TruncDate("created_at", tzinfo=dt.timezone.utc)).values("day")
            .annotate(calls=Count("id")).order_by())
    counts = {row["day"]: row["calls"] for row in rows}
    per_day = [(first + dt.timedelta(days=offset), counts.get(first + dt.timedelta(days=offset), 0))
               for offset in range(days)]
    cap = account.plan.daily_request_cap
    used = counts.get(today, 0)
    return {"today": used, "cap": cap, "remaining": None if cap is None else max(cap - used, 0), "per_day": per_day,
            "total": sum(calls for _, calls in per_day)}


def with_last_used(tokens):
    """Annotate a token queryset with `last_used`: its latest logged call (None if none in the last 30 days).

    Read from the log rather than a `last_used` column on the token: a column would add an UPDATE of one
    hot row to every call (contended at 300 calls a minute), while the log row is written anyway and the
    (token_id, created_at) index makes this a single index probe per token.
    """
    latest = RequestLog.objects.filter(token_id=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return tokens.annotate(last_used=Subquery(latest))
