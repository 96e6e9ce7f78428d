"""The request log: one row of metadata per API/MCP call, kept 30 days (docs/agents/tokens-and-oauth.md, Request log).

agent.pipeline hands a row over once a call's answer is known (`request_log_enqueue`): the row, stamped
with the call's time, waits in this process's buffer, and a background thread writes what has gathered every
QMAILING_REQUEST_LOG_FLUSH_SECONDS (default 1 s) in one multi-row INSERT, off the request path; a full batch
(FLUSH_ROWS) wakes it sooner. `request_log_flush()` writes the buffer now: at the process's exit (atexit, which
daphne and uvicorn reach after their SIGTERM/SIGINT shutdown), and in tests before they read rows. A crash
(SIGKILL, power loss) loses at most the rows of the last flush interval; a database that refuses a batch keeps
its rows in the buffer (up to MAX_BUFFERED) for the next try. `request_log_write` writes one row at once.

A beat job purges old rows in batches (`request_log_purge`); the Developers page reads usage per day and
each token's last use from it. Bodies and results are never logged: there is no column for them.
"""

import atexit
import datetime as dt
import logging
import threading

from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Account, RequestLog

logger = logging.getLogger(__name__)

RETENTION_DAYS = 30
PURGE_BATCH = 5000
MAX_OPERATION = RequestLog._meta.get_field("operation").max_length
FLUSH_ROWS = 500  # a batch this big is written without waiting for the interval
MAX_BUFFERED = 100_000  # rows kept while the database refuses them; beyond, the oldest are dropped (and logged)


def _row(*, account, token_id, operation, status, duration_ms):
    return RequestLog(account_id=getattr(account, "pk", account), token_id=token_id,
                      operation=operation[:MAX_OPERATION], status=status, duration_ms=max(0, int(duration_ms)),
                      created_at=timezone.now())


def request_log_write(*, account, token_id, operation, status, duration_ms):
    """Record one call now (one INSERT)."""
    _row(account=account, token_id=token_id, operation=operation, status=status, duration_ms=duration_ms).save()


class _Buffer:
    def __init__(self):
        self.lock = threading.Lock()  # guards rows
        self.writing = threading.Lock()  # one flush at a time: a flush returns once every row before it is written
        self.rows = []
        self.wakeup = threading.Event()
        self.thread = None
        self.exit_hook = False

    def add(self, row):
        with self.lock:
            self.rows.append(row)
            full = len(self.rows) >= FLUSH_ROWS
            if not self.exit_hook:
                atexit.register(request_log_flush)
                self.exit_hook = True
        interval = settings.QMAILING_REQUEST_LOG_FLUSH_SECONDS
        if interval <= 0:
            if full:
                request_log_flush()
            return
        if self.thread is None or not self.thread.is_alive():
            with self.lock:
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self.run, name="qmailing-request-log", daemon=True)
                    self.thread.start()
        if full:
            self.wakeup.set()

    def run(self):
        while True:
            self.wakeup.wait(max(settings.QMAILING_REQUEST_LOG_FLUSH_SECONDS, 0.05))
            self.wakeup.clear()
            try:
                request_log_flush()
            except Exception:
                logger.exception("Could not write the request log; its rows wait for the next try")
            finally:
                connection.close()  # this thread's connection goes back (to the pool) between flushes

    def flush(self):
        with self.writing:
            with self.lock:
                rows, self.rows = self.rows, []
            if not rows:
                return 0
            try:
                # A row of an account deleted meanwhile is dropped, as the cascade would have deleted it.
                alive = {str(pk) for pk in Account.objects.filter(pk__in={row.account_id for row in rows})
                         .values_list("pk", flat=True)}
                rows = [row for row in rows if str(row.account_id) in alive]
                RequestLog.objects.bulk_create(rows, batch_size=FLUSH_ROWS)
            except Exception:
                with self.lock:
                    self.rows = rows + self.rows
                    if len(self.rows) > MAX_BUFFERED:
                        logger.error("The request log dropped %d rows the database would not take",
                                     len(self.rows) - MAX_BUFFERED)
                        del self.rows[:len(self.rows) - MAX_BUFFERED]
                raise
            return len(rows)


_buffer = _Buffer()


def request_log_enqueue(*, account, token_id, operation, status, duration_ms):
    """Record one call: buffered in this process and written within QMAILING_REQUEST_LOG_FLUSH_SECONDS (module
    docstring). Costs no query on the caller's thread."""
    _buffer.add(_row(account=account, token_id=token_id, operation=operation, status=status,
                     duration_ms=duration_ms))


def request_log_flush():
    """Write every buffered row now, and return how many were written. Waits for a flush under way, so the rows
    of every call answered before this was called are in the database when it returns."""
    return _buffer.flush()


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
            "total": sum(calls for _, calls in per_day),
            "percent": None if cap is None else (100 if cap == 0 else min(100, round(used * 100 / cap)))}


# Status classes the usage chart stacks, in drawing order: (key, label).
STATUS_CLASSES = (
    ("ok", "Succeeded (2xx)"),
    ("refused", "Refused (4xx)"),
    ("limited", "Rate-limited (429)"),
    ("failed", "Failed (5xx)"),
)
TOP_OPERATIONS = 8


def status_class(status):
    if status == 429:
        return "limited"
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return "ok"


def _percent(part, whole):
    return 0.0 if not whole else round(part * 100 / whole, 2)


def usage_breakdown(*, account, days=RETENTION_DAYS, now=None):
    """Every logged call of the last `days` UTC days (429s included), by day, operation and status: the numbers
    the Developers page draws its charts and tables from (one grouped query).

    Returns {"total", "first", "last", "days": [{"date", "total", "percent" (of the busiest day), "counts" (one
    per STATUS_CLASSES), "segments": [{"key", "label", "calls", "percent" (of that day)}] (non-zero only)}],
    "operations": [{"name", "calls", "percent" (of the busiest operation), "counts"}] (the TOP_OPERATIONS
    busiest, then one "Other operations" row), "statuses": [{"key", "label", "calls", "percent" (of all calls)}] and
    "codes": [(status, calls)]}.
    """
    now = now or timezone.now()
    today = now.astimezone(dt.timezone.utc).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.timezone.utc)
    rows = (RequestLog.objects.filter(account=account, created_at__gte=start)
            .annotate(day=TruncDate("created_at", tzinfo=dt.timezone.utc))
            .values("day", "operation", "status").annotate(calls=Count("id")).order_by())
    per_day, per_operation, per_code = {}, {}, {}
    for row in rows:
        key = status_class(row["status"])
        day = per_day.setdefault(row["day"], {})
        day[key] = day.get(key, 0) + row["calls"]
        operation = per_operation.setdefault(row["operation"], {})
        operation[key] = operation.get(key, 0) + row["calls"]
        per_code[row["status"]] = per_code.get(row["status"], 0) + row["calls"]
    labels = dict(STATUS_CLASSES)
    day_totals = {day: sum(counts.values()) for day, counts in per_day.items()}
    busiest_day = max(day_totals.values(), default=0)
    chart_days = []
    for offset in range(days):
        date = first + dt.timedelta(days=offset)
        counts, total = per_day.get(date, {}), day_totals.get(date, 0)
        chart_days.append({"date": date, "total": total, "percent": _percent(total, busiest_day),
                           "counts": [counts.get(key, 0) for key, _ in STATUS_CLASSES], "segments": [
            {"key": key, "label": labels[key], "calls": counts[key], "percent": _percent(counts[key], total)}
            for key, _ in STATUS_CLASSES if counts.get(key)]})
    ranked = sorted(per_operation.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    operations = [(name, counts) for name, counts in ranked[:TOP_OPERATIONS]]
    if len(ranked) > TOP_OPERATIONS:
        other = {}
        for _, counts in ranked[TOP_OPERATIONS:]:
            for key, calls in counts.items():
                other[key] = other.get(key, 0) + calls
        operations.append((f"Other operations ({len(ranked) - TOP_OPERATIONS})", other))
    busiest_operation = max((sum(counts.values()) for _, counts in operations), default=0)
    total = sum(day_totals.values())
    status_totals = {key: sum(counts.get(key, 0) for counts in per_day.values()) for key, _ in STATUS_CLASSES}
    return {
        "total": total, "first": first, "last": today, "days": chart_days,
        "operations": [{"name": name, "calls": sum(counts.values()),
                        "percent": _percent(sum(counts.values()), busiest_operation),
                        "counts": [counts.get(key, 0) for key, _ in STATUS_CLASSES]}
                       for name, counts in operations],
        "statuses": [{"key": key, "label": label, "calls": status_totals[key],
                      "percent": _percent(status_totals[key], total)} for key, label in STATUS_CLASSES],
        "codes": sorted(per_code.items()),
    }


def with_last_used(tokens):
    """Annotate a token queryset with `last_used`: its latest logged call (None if none in the last 30 days).

    Read from the log rather than a `last_used` column on the token: a column would add an UPDATE of one
    hot row to every call (contended at 300 calls a minute), while the log row is written anyway and the
    (token_id, created_at) index makes this a single index probe per token.
    """
    latest = RequestLog.objects.filter(token_id=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return tokens.annotate(last_used=Subquery(latest))
