"""Ingest throughput: email_ingest against the bare standard-library parser, on the same corpus.

Usage: [DATABASE_URL=postgres://…] python bench/ingest.py [--messages 2000] [--rounds 5] [--batch 100]
Migrates the database named by the environment, stores the mail of throwaway accounts in a temporary
media folder, and deletes both afterwards. The two phases alternate, round after round, over the same
messages: each round times the bare parser and email_ingest (into a fresh account, one transaction per
message), in turn first and second, and its ratio is ingest / bare parse of that round; the figure is the
median of the rounds' ratios, so a load change on a shared machine moves one round, not the result.
--batch N also times imports that commit every N messages (ingest_batch, as `import_mail --batch`), into
another throwaway account; the main figure stays one transaction per message.
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")

WORDS = ("the quarterly report shows steady growth in every region while costs stayed flat and the team "
         "shipped the new onboarding flow ahead of schedule please review the attached figures before").split()


def corpus(count, *, seed=7):
    """`count` typical ~20 KB messages: text + HTML alternative, a 2 KB attachment, one in three a reply."""
    rng = random.Random(seed)
    messages, ids = [], []
    for index in range(count):
        paragraph = lambda: " ".join(rng.choice(WORDS) for _ in range(120))  # noqa: E731
        text = "\n\n".join(paragraph() for _ in range(10))
        message = EmailMessage()
        message["From"] = f"Sender {index % 50} <sender{index % 50}@example.com>"
        message["To"] = "Bench <bench@example.org>"
        message["Date"] = format_datetime(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
        message["Message-ID"] = msgid = make_msgid(domain="bench.example")
        if ids and index % 3 == 0:
            parent = rng.choice(ids[-20:])
            message["Subject"] = f"Re: Report {ids.index(parent)}"
            message["In-Reply-To"], message["References"] = parent, parent
        else:
            message["Subject"] = f"Report {index}"
        ids.append(msgid)
        message.set_content(text)
        message.add_alternative("<html><body>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) +
                                '<p><a href="https://example.com/report">full report</a></p></body></html>', subtype="html")
        message.add_attachment(rng.randbytes(2048), maintype="application", subtype="octet-stream", filename="figures.bin")
        messages.append(message.as_bytes())
    return messages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="parser and ingest phases, alternated (default 5)")
    parser.add_argument("--batch", type=int, default=0, help="also time N messages per transaction")
    options = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import account_set_plan, account_signup
    from mailboxes.inbound.ingest import email_ingest, ingest_batch

    call_command("migrate", verbosity=0)
    media = tempfile.mkdtemp(prefix="qmailing-bench-")
    settings.MEDIA_ROOT = media
    messages = corpus(options.messages)
    average = sum(map(len, messages)) // len(messages)
    print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']}); "
          f"{len(messages)} messages, {average / 1024:.1f} KB on average")

    def timed_parse():
        started = time.perf_counter()
        for raw in messages:
            BytesParser(policy=policy.default).parsebytes(raw)
        return len(messages) / (time.perf_counter() - started)

    def timed_ingest(batch):
        """msg/s and thread count of storing the corpus in a fresh account, `batch` messages per commit."""
        user = account_signup(email=f"bench-{uuid.uuid4().hex[:12]}@example.com", password="bench horse battery 42")
        account = account_set_plan(account=user.account, plan_code="PRO_MAX")
        mailbox = account.mailboxes.get()
        try:
            started = time.perf_counter()
            for start in range(0, len(messages), batch):
                with ingest_batch() if batch > 1 else nullcontext():
                    for raw in messages[start:start + batch]:
                        email_ingest(mailbox=mailbox, raw=raw)
            return len(messages) / (time.perf_counter() - started), mailbox.threads.count()
        finally:
            account.delete()
            user.delete()

    rounds = []  # (bare msg/s, ingest msg/s, threads) of each round
    try:
        for number in range(max(1, options.rounds)):
            if number % 2 == 0:  # the order alternates too: neither phase always runs on a warmer machine
                bare = timed_parse()
                ingest, threads = timed_ingest(1)
            else:
                ingest, threads = timed_ingest(1)
                bare = timed_parse()
            rounds.append((bare, ingest, threads))
            print(f"round {number + 1}: bare {bare:8.1f} msg/s, email_ingest {ingest:8.1f} msg/s ({threads} threads), "
                  f"ratio {ingest / bare:.3f}", flush=True)
        batched = timed_ingest(options.batch)[0] if options.batch > 1 else None
    finally:
        shutil.rmtree(media, ignore_errors=True)
    ratios = [ingest / bare for bare, ingest, _ in rounds]
    print(f"bare BytesParser (policy.default): {statistics.median(r[0] for r in rounds):8.1f} msg/s  (median of rounds)")
    print(f"email_ingest (parse + store):      {statistics.median(r[1] for r in rounds):8.1f} msg/s  (median of rounds)")
    print(f"ratio ingest / bare parse:         {statistics.median(ratios):8.3f}  (median of {len(ratios)} rounds; "
          f"{min(ratios):.3f} to {max(ratios):.3f})")
    if batched is not None:
        print(f"email_ingest, {options.batch} per transaction: {batched:8.1f} msg/s  (imports only)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__":
    main()
