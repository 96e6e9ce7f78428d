"""Ingest throughput: email_ingest against the bare standard-library parser, on the same corpus.

Usage: [DATABASE_URL=postgres://…] python bench/ingest.py [--messages 2000] [--batch 100]
Migrates the database named by the environment, stores the mail of a throwaway account in a temporary
media folder, and deletes both afterwards. --batch N also times imports that commit every N messages
(ingest_batch, as `import_mail --batch`), into a second throwaway account; the main figure stays one
transaction per message.
"""

import argparse
import os
import random
import shutil
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

    started = time.perf_counter()
    for raw in messages:
        BytesParser(policy=policy.default).parsebytes(raw)
    bare = len(messages) / (time.perf_counter() - started)

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

    try:
        ingest, threads = timed_ingest(1)
        batched = timed_ingest(options.batch)[0] if options.batch > 1 else None
    finally:
        shutil.rmtree(media, ignore_errors=True)
    print(f"bare BytesParser (policy.default): {bare:8.1f} msg/s")
    print(f"email_ingest (parse + store):      {ingest:8.1f} msg/s  ({threads} threads)")
    print(f"ratio ingest / bare parse:         {ingest / bare:8.3f}")
    if batched is not None:
        print(f"email_ingest, {options.batch} per transaction: {batched:8.1f} msg/s  (imports only)")


if __name__ == "__main__":
    main()
