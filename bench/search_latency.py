"""List and search latency on a mailbox of 1,000,000 messages (PostgreSQL only).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qm_bench .venv/bin/python bench/search_latency.py [--rows N] [--runs N]

The first run migrates and generates the mailbox set-based in SQL (tsvector computed at insert), in
batches; a marker row in bench_marker makes later runs reuse it. Timings go through the real
selectors (ORM included) and print p50/p95 in milliseconds.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

BATCH = 100_000
TARGETS = {"list first page": 20, "list deep page": 20, "search": 100}
SUBJECTS = [
    "Invoice {n} for {month}", "Re: Project {word} kickoff", "Your order {n} has shipped", "Weekly status: {word}",
    "Meeting notes {month}", "Fwd: Contract draft for {word}", "Password reset request", "Quarterly report {month}",
    "Re: Lunch on Friday?", "Design review: {word} landing page", "Support ticket #{n}", "Newsletter: {word} digest",
    "Travel itinerary {month}", "Re: Budget approval {n}", "Welcome to {word}", "Payment received {n}",
]
WORDS = ["atlas", "nimbus", "harbor", "falcon", "orchid", "quartz", "summit", "meadow", "cobalt", "aurora", "juniper",
         "pioneer", "lantern", "voyager", "granite", "saffron", "ember", "willow", "horizon", "tundra"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
SENTENCES = [
    "Please find the attached document and let me know if anything is missing.",
    "Could we move the call to Thursday afternoon?", "The shipment left the warehouse this morning.",
    "Thanks for the quick turnaround on the proposal.", "I reviewed the numbers and the margin looks healthy.",
    "Reminder: the deadline for submissions is next Monday.", "The server migration finished without downtime.",
    "Our team would love to hear your feedback on the prototype.", "Invoice payment is due within thirty days.",
    "Let's schedule a retrospective after the launch.", "The contract needs a signature from both parties.",
    "We noticed a login from a new device on your account.", "Attached are the slides from yesterday's workshop.",
    "The customer reported a bug in the checkout flow.", "Happy to help with the onboarding of the new hires.",
]
SENDERS = [(f"{first} {last}", f"{first.lower()}.{last.lower()}@{domain}")
           for first, last, domain in [
               ("Alice", "Martin", "vendor.example"), ("Bob", "Nguyen", "client.example"),
               ("Carla", "Rossi", "agency.example"), ("Deepak", "Shah", "corp.example"),
               ("Emma", "Schmidt", "shop.example"), ("Farid", "Haddad", "billing.example"),
               ("Grace", "Kim", "studio.example"), ("Hugo", "Lefevre", "travel.example"),
               ("Ines", "Garcia", "news.example"), ("Jon", "Berg", "support.example")]]


def _sql_array(values):
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _bench_mailbox():
    from accounts.services import account_set_plan, account_signup
    from accounts.models import User

    user = User.objects.filter(email="bench@bench.example").first()
    if user is None:
        user = account_signup(email="bench@bench.example", password="bench password 12345", full_name="Bench")
        account_set_plan(account=user.account, plan_code="PRO_MAX")
    return user.account, user.account.mailboxes.get()


# The columns the generator writes itself; every other NOT NULL column gets the model's default, so a
# column added later cannot break the benchmark on a fresh database.
WRITTEN = {"id", "direction", "folder", "previous_folder", "is_read", "is_starred", "from_address", "from_name", "to",
           "cc", "bcc", "reply_to", "recipients_text", "subject", "date", "received_at", "message_id", "in_reply_to",
           "references", "size", "raw", "text", "text_clean", "html", "snippet", "has_attachments", "defects",
           "delivery_status", "delivery_detail", "esp_message_id", "account_id", "mailbox_id", "thread_id",
           "search_vector"}


def _model_defaults():
    """(", col, …", ", %s, …", [values]) for Email's NOT NULL columns the generator does not write."""
    from mailboxes.models import Email

    fields = [f for f in Email._meta.concrete_fields if f.column not in WRITTEN and not f.null]
    columns = "".join(", " + connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.get_default(), connection) for f in fields]
    return columns, ", %s" * len(fields), values


def _generate(*, account, mailbox, rows):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_marker (mailbox_id uuid PRIMARY KEY, rows bigint, done boolean)")
        cursor.execute("SELECT rows, done FROM bench_marker WHERE mailbox_id = %s", [mailbox.pk])
        found = cursor.fetchone()
        if found and found[1] and found[0] >= rows:
            print(f"reusing generated mailbox ({found[0]:,} messages)")
            return
        cursor.execute("DELETE FROM mailboxes_email WHERE mailbox_id = %s", [mailbox.pk])
        cursor.execute("DELETE FROM mailboxes_thread WHERE mailbox_id = %s", [mailbox.pk])
        cursor.execute("INSERT INTO bench_marker VALUES (%s, %s, false) ON CONFLICT (mailbox_id) DO UPDATE SET rows = %s, done = false",
                       [mailbox.pk, rows, rows])
        subjects, words, months = _sql_array(SUBJECTS), _sql_array(WORDS), _sql_array(MONTHS)
        sentences = _sql_array(SENTENCES)
        names, addresses = _sql_array([s[0] for s in SENDERS]), _sql_array([s[1] for s in SENDERS])
        defaulted_columns, defaulted_values, defaults = _model_defaults()
        started = time.perf_counter()
        threads = rows // 4
        cursor.execute(
            "INSERT INTO mailboxes_thread (id, subject, message_count, last_message_at, created_at, account_id, mailbox_id)"
            " SELECT md5('t' || %s || g)::uuid, 'thread ' || g, 4, now() - (g * 4 * interval '30 seconds'), now(), %s, %s"
            " FROM generate_series(1, %s) g", [str(mailbox.pk), account.pk, mailbox.pk, threads])
        for start in range(1, rows + 1, BATCH):
            end = min(start + BATCH - 1, rows)
            cursor.execute(f"""
                WITH src AS (
                  SELECT g,
                    replace(replace(replace(({subjects})[1 + (hashint4(g) & 2147483647) %% {len(SUBJECTS)}],
                      '{{n}}', (1000 + g %% 90000)::text),
                      '{{word}}', ({words})[1 + (hashint4(g * 7) & 2147483647) %% {len(WORDS)}]),
                      '{{month}}', ({months})[1 + g %% 12]) AS subject,
                    ({sentences})[1 + (hashint4(g * 3) & 2147483647) %% {len(SENTENCES)}] || ' ' ||
                    ({sentences})[1 + (hashint4(g * 5) & 2147483647) %% {len(SENTENCES)}] || ' ' ||
                    ({words})[1 + (hashint4(g * 11) & 2147483647) %% {len(WORDS)}] || ' ' ||
                    ({sentences})[1 + (hashint4(g * 13) & 2147483647) %% {len(SENTENCES)}] AS body,
                    1 + (hashint4(g * 17) & 2147483647) %% {len(SENDERS)} AS who
                  FROM generate_series(%s, %s) g)
                INSERT INTO mailboxes_email (id, direction, folder, previous_folder, is_read, is_starred, from_address,
                  from_name, "to", cc, bcc, reply_to, recipients_text, subject, date, received_at, message_id, in_reply_to, "references",
                  size, raw, text, text_clean, html, snippet, has_attachments, defects, delivery_status, delivery_detail,
                  esp_message_id, account_id, mailbox_id, thread_id, search_vector{defaulted_columns})
                SELECT md5('e' || %s || g)::uuid, 'inbound', CASE WHEN g %% 20 = 0 THEN 'ARCHIVE' ELSE 'INBOX' END, '',
                  g > 200, g %% 97 = 0, ({addresses})[who], ({names})[who], '[]', '[]', '[]', '[]', '', subject,
                  now() - (g * interval '30 seconds'), now() - (g * interval '30 seconds'), 'bench-' || g || '@bench.example',
                  '', '[]', 2048, 'raw/bench/' || g || '.eml', body, body, '', left(body, 240), g %% 10 = 0, '[]', '', '', '',
                  %s, %s, md5('t' || %s || ((g - 1) / 4 + 1))::uuid,
                  setweight(to_tsvector('english', subject), 'A') ||
                  setweight(to_tsvector('english', ({names})[who] || ' ' || ({addresses})[who] || ' ' ||
                                        translate(({addresses})[who], '@.', '  ')), 'B') ||
                  setweight(to_tsvector('english', body), 'C'){defaulted_values}
                FROM src""", [start, end, str(mailbox.pk), account.pk, mailbox.pk, str(mailbox.pk), *defaults])
            print(f"  generated {end:,} / {rows:,} messages ({time.perf_counter() - started:.0f} s)", flush=True)
        cursor.execute("UPDATE bench_marker SET done = true WHERE mailbox_id = %s", [mailbox.pk])
    from mailboxes.store.counters import mailbox_counters_recompute

    mailbox_counters_recompute(mailbox=mailbox)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE mailboxes_email")
        cursor.execute("VACUUM ANALYZE mailboxes_thread")


def _measure(name, runs, call):
    call()  # warm caches and the connection
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    target = next((ms for key, ms in TARGETS.items() if name.startswith(key)), None)
    verdict = "" if target is None else ("ok" if p95 < target else f"MISSED (target p95 < {target} ms)")
    print(f"{name:<44} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   {verdict}")
    return p95


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run with DATABASE_URL=postgres://…/qm_bench: this benchmark measures the PostgreSQL indexes.")
    call_command("migrate", verbosity=0)
    account, mailbox = _bench_mailbox()
    _generate(account=account, mailbox=mailbox, rows=args.rows)

    from mailboxes.store.selectors import email_list
    from mailboxes.models import Email
    from mailboxes.store.search import email_search
    from core.pagination import cursor_encode

    deep_row = (Email.objects.filter(mailbox=mailbox, folder="INBOX").order_by("-received_at", "-id")
                .values_list("received_at", "id")[args.rows // 2: args.rows // 2 + 1].get())
    deep_cursor = cursor_encode(position=deep_row[0], id=deep_row[1])
    print(f"mailbox {mailbox.address}: {Email.objects.filter(mailbox=mailbox).count():,} messages; {args.runs} runs each")

    def page(**kwargs):
        return lambda: list(email_list(account=account, mailbox=mailbox, folder="INBOX", limit=50, **kwargs).items)

    _measure("list first page (50)", args.runs, page())
    _measure(f"list deep page (after {args.rows // 2:,})", args.runs, page(cursor=deep_cursor))
    queries = ["invoice", "harbor", '"contract draft"', "shipment -warehouse", "falcon OR orchid", "retrospective launch"]
    rng = random.Random(7)
    _measure("search (mixed queries, one mailbox)", args.runs,
             lambda: list(email_search(account=account, query=rng.choice(queries), mailbox=mailbox, limit=50).items))
    _measure("search (account-wide, unread filter)", args.runs,
             lambda: list(email_search(account=account, query=rng.choice(queries), unread=True, limit=50).items))
    for query in queries:
        _measure(f"search {query!r}", max(20, args.runs // 5),
                 lambda q=query: list(email_search(account=account, query=q, mailbox=mailbox, limit=50).items))
    first = email_search(account=account, query="invoice", mailbox=mailbox, limit=50)
    _measure("search 'invoice' second page by cursor", max(20, args.runs // 5),
             lambda: list(email_search(account=account, query="invoice", mailbox=mailbox, limit=50,
                                       cursor=first.next_cursor).items))


if __name__ == "__main__":
    main()
