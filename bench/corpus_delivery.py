"""Deliver public sample mail over the real SMTP server, with CRLF line endings, and report what happened.

    python bench/corpus_delivery.py                 # the sample messages of four public sdists (pip download)
    python bench/corpus_delivery.py --small         # the sample messages under tests/mailboxes/fixtures only
    python bench/corpus_delivery.py --sdist-dir D   # sdists already downloaded into D

Sdists: mail-parser, talon, django-mailbox and flufl.bounce, fetched with `pip download --no-binary
:all:`. Every file in them that looks like a message (a header line first, no NUL bytes) is sent to
one mailbox on a fresh database. For each it prints whether the server accepted it, whether the
stored copy ends with exactly the bytes sent (our trace and authentication headers go on top), and
the reply of every refusal. DNS lookups go to a closed local port, so authentication answers at once
(temperror) instead of waiting on a network this machine may not have.
"""

import argparse
import collections
import os
import re
import smtplib
import socket
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")
os.environ.setdefault("QMAILING_VAR_DIR", tempfile.mkdtemp(prefix="qmailing-corpus-"))

SDISTS = ["mail-parser", "talon", "django-mailbox", "flufl.bounce"]
_HEADER_LINE = re.compile(rb"^(From |[!-9;-~]+:)")
MAX_BYTES = 35 * 1024 * 1024


def looks_like_a_message(data):
    head = data[:4096]
    return bool(data) and b"\x00" not in head and bool(_HEADER_LINE.match(head.lstrip(b"\r\n")))


def crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def _sdists(directory):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(directory), *SDISTS], check=True)
    return sorted(p for p in directory.iterdir() if p.is_file())


def _members(archive):
    """(name, bytes) of every file in an sdist."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if not info.is_dir() and info.file_size <= MAX_BYTES:
                    yield info.filename, zipped.read(info)
        return
    with tarfile.open(archive) as tarred:
        for member in tarred.getmembers():
            if member.isfile() and member.size <= MAX_BYTES:
                yield member.name, tarred.extractfile(member).read()


def corpus(*, small, sdist_dir):
    if small:
        for path in sorted((ROOT / "tests" / "mailboxes" / "fixtures").rglob("*")):
            if path.is_file() and looks_like_a_message(path.read_bytes()):
                yield "fixtures", str(path.relative_to(ROOT)), path.read_bytes()
        return
    directory = Path(sdist_dir) if sdist_dir else Path(tempfile.mkdtemp(prefix="qmailing-sdists-"))
    archives = sorted(p for p in directory.iterdir() if p.is_file()) if sdist_dir else _sdists(directory)
    for archive in archives:
        for name, data in _members(archive):
            if looks_like_a_message(data):
                yield archive.name, name, data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the repository's own fixtures only (no download)")
    parser.add_argument("--sdist-dir", help="use sdists already in this folder")
    parser.add_argument("--verbose", action="store_true", help="a line for every message")
    options = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.services import account_set_plan, account_signup
    from mailboxes.inbound.smtp import smtp_controller
    from mailboxes.models import Email

    call_command("migrate", verbosity=0)
    settings.QMAILING_DNS_RESOLVERS, settings.QMAILING_DNS_TIMEOUT = ["127.0.0.1:9"], 0.2
    user = account_signup(email="corpus@bench.example", password="corpus horse battery 42")
    mailbox = account_set_plan(account=user.account, plan_code="PRO_MAX").mailboxes.get()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = smtp_controller(host="127.0.0.1", port=port)
    server.start()
    totals, refusals, per_source = collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)
    try:
        for source, name, data in corpus(small=options.small, sdist_dir=options.sdist_dir):
            sent = crlf(data if data.endswith(b"\n") else data + b"\n")
            before = set(Email.objects.filter(mailbox=mailbox).values_list("pk", flat=True))
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                    client.sendmail("corpus@sender.example", [mailbox.address], sent)
                outcome = "accepted"
            except smtplib.SMTPResponseException as exc:
                outcome = "refused"
                reason = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
                refusals[reason[:120]] += 1
            except smtplib.SMTPRecipientsRefused as exc:
                outcome = "refused"
                code, message = next(iter(exc.recipients.values()))
                refusals[f"{code} {message.decode(errors='replace')}"[:120]] += 1
            totals[outcome] += 1
            per_source[source][outcome] += 1
            if outcome == "accepted":
                new = Email.objects.filter(mailbox=mailbox).exclude(pk__in=before).get()
                with new.raw.open("rb") as handle:
                    exact = handle.read().endswith(sent)
                totals["stored byte for byte" if exact else "stored but changed"] += 1
                per_source[source]["byte for byte" if exact else "changed"] += 1
                if new.defects:
                    totals["with parser defects"] += 1
            if options.verbose:
                print(f"{outcome:9} {source}: {name}")
    finally:
        server.stop()
    print(f"messages: {sum(totals[k] for k in ('accepted', 'refused'))}")
    for key in ("accepted", "refused", "stored byte for byte", "stored but changed", "with parser defects"):
        print(f"  {key:22} {totals[key]}")
    for source, counts in sorted(per_source.items()):
        print(f"  {source}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for reason, count in refusals.most_common():
        print(f"  refused {count} × {reason}")


if __name__ == "__main__":
    main()
