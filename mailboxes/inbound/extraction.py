"""Searchable text from attachments, read by a worker after the message is stored, never while receiving.

text/* attachments give their decoded text; PDFs are read by PDFium (pypdfium2) in a child process
(pdf_child.py) under hard limits, because a PDF is attacker-controlled input: a 15 KB file can hold
millions of text operators or a stream that inflates to gigabytes. Every limit is named in
PdfLimits; a document past one of them ends `failed` (or `done` with the text cut short, for pages
and characters) and never holds anything else up.
"""

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from mailboxes.inbound.parsing import clean_text, normalize_newlines, parse_message
from mailboxes.models import Attachment, Email, Extraction
from mailboxes.store.search import search_index_email

logger = logging.getLogger(__name__)

MAX_EXTRACTED_CHARS = 100_000
# All the attachments of one email share this much time; what is still pending after it ends failed.
MAX_SECONDS_PER_EMAIL = 60


@dataclass(frozen=True)
class PdfLimits:
    max_bytes: int = 10 * 1024 * 1024  # larger files are not read at all
    max_pages: int = 50  # the first pages only; the text is kept, marked as cut short
    max_inflated_bytes: int = 128 * 1024 * 1024  # what the file's Flate streams may decompress to
    max_chars: int = MAX_EXTRACTED_CHARS
    cpu_seconds: int = 10  # RLIMIT_CPU: the kernel ends the child past it
    seconds: int = 15  # wall clock, after which the child is killed (a child that waits uses no CPU)
    memory_bytes: int = 256 * 1024 * 1024  # the child's address space (RLIMIT_AS)


PDF_LIMITS = PdfLimits()
_PDF_CHILD = Path(__file__).with_name("pdf_child.py")
_CHILD_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "TMPDIR")


@dataclass(frozen=True)
class Extracted:
    state: str  # Extraction.DONE or Extraction.FAILED
    text: str = ""
    detail: str = ""  # the limit or failure, for the log


def extraction_wanted(*, content_type, data) -> bool:
    """Whether an attachment has text we extract (ingest stores it `pending`, or `none`)."""
    return content_type.startswith("text/") or _is_pdf(content_type=content_type, data=data)


def _is_pdf(*, content_type, data):
    return content_type == "application/pdf" or data[:5] == b"%PDF-"


def pdf_text(data, *, limits=PDF_LIMITS) -> Extracted:
    """The text of a PDF's first pages, read in a resource-limited child process that is killed on time."""
    if len(data) > limits.max_bytes:
        return Extracted(Extraction.FAILED, detail=f"larger than {limits.max_bytes} bytes")
    command = [sys.executable, "-I", str(_PDF_CHILD), str(limits.max_pages), str(limits.max_chars),
               str(limits.max_inflated_bytes), str(limits.cpu_seconds), str(limits.memory_bytes)]
    # Only what a Python needs to start: the child that parses hostile bytes gets none of the server's secrets.
    environment = {name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env=environment, close_fds=True, start_new_session=True)
    try:
        output, _ = child.communicate(data, timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return Extracted(Extraction.FAILED, detail=f"still running after {limits.seconds} s, killed")
    if child.returncode != 0:  # killed by the CPU limit (SIGXCPU), or aborted at the memory limit
        return Extracted(Extraction.FAILED, detail=f"child ended with status {child.returncode}")
    try:
        answer = json.loads(output)
        if "error" in answer:
            return Extracted(Extraction.FAILED, detail=str(answer["error"])[:200])
        text = normalize_newlines(clean_text(str(answer["text"])))
    except (ValueError, KeyError, TypeError):
        return Extracted(Extraction.FAILED, detail="unreadable answer from the child")
    return Extracted(Extraction.DONE, text=text.strip()[:limits.max_chars],
                     detail=", ".join(f"cut at max_{name}" for name in answer.get("limited", ())))


def attachment_text(*, content_type, data, text="") -> Extracted:
    """The searchable text of one attachment; `text` is a text/* attachment's body as the parser decoded it."""
    if content_type.startswith("text/"):
        return Extracted(Extraction.DONE, text=text[:MAX_EXTRACTED_CHARS])
    if _is_pdf(content_type=content_type, data=data):
        return pdf_text(data)
    return Extracted(Extraction.NONE)


# A pending attachment older than this lost its task (the broker was away at commit, a worker died for
# good): the sweep enqueues its email again, at most SWEEP_BATCH emails a run.
SWEEP_BATCH = 500


def emails_with_stuck_extraction(*, before):
    """Ids of emails stored before `before` whose attachments still wait for their text (oldest first): their
    task was lost (mailboxes.work)."""
    return list(Attachment.objects.filter(extraction=Extraction.PENDING, email__received_at__lt=before)
                .order_by("email__received_at").values_list("email_id", flat=True).distinct()[:SWEEP_BATCH])


def attachments_extract(*, email_id, seconds=MAX_SECONDS_PER_EMAIL) -> int:
    """Extract the text of an email's pending attachments, then rewrite its search entry; returns how many.

    Runs in a worker (attachments_extract_task), outside any transaction while it reads: each result is
    written on its own, and only a row still `pending` is written, so a repeated task does nothing twice.
    An email deleted meanwhile is skipped.
    """
    pending = list(Attachment.objects.filter(email_id=email_id, extraction=Extraction.PENDING).order_by("position"))
    if not pending:
        return 0
    decoded = _decoded_texts(email_id) if any(a.content_type.startswith("text/") for a in pending) else {}
    deadline = time.monotonic() + seconds
    for attachment in pending:
        if time.monotonic() > deadline:
            outcome = Extracted(Extraction.FAILED, detail=f"the email's {seconds} s were spent")
        else:
            outcome = _attachment_extract(attachment, decoded)
        if outcome.state == Extraction.FAILED or outcome.detail:
            logger.info("attachment %s of email %s: %s (%s)", attachment.position, email_id, outcome.state,
                        outcome.detail)
        Attachment.objects.filter(pk=attachment.pk, extraction=Extraction.PENDING).update(
            extraction=outcome.state, extracted_text=outcome.text)
    with transaction.atomic():
        email = Email.objects.select_for_update().filter(pk=email_id).first()
        if email is not None:
            search_index_email(email=email)
    return len(pending)


def _attachment_extract(attachment, decoded):
    if attachment.content_type.startswith("text/"):
        return attachment_text(content_type=attachment.content_type, data=b"",
                               text=decoded.get((attachment.position, attachment.sha256), ""))
    if attachment.size > PDF_LIMITS.max_bytes:
        return Extracted(Extraction.FAILED, detail=f"larger than {PDF_LIMITS.max_bytes} bytes")
    try:
        with attachment.file.open("rb") as handle:
            data = handle.read()
        return attachment_text(content_type=attachment.content_type, data=data)
    except Exception:  # a missing file or a child that cannot start: this attachment only
        logger.exception("text extraction of attachment %s failed", attachment.pk)
        return Extracted(Extraction.FAILED, detail="error")


def _decoded_texts(email_id):
    """(position, sha256) → text of the email's text/* attachments, decoded in their declared charsets.

    The charset lives only in the message, so it is parsed again (the same parse ingest ran); the
    checksum makes sure each text belongs to the stored file at that position.
    """
    email = Email.objects.filter(pk=email_id).only("raw").first()
    if email is None:
        return {}
    with email.raw.open("rb") as handle:
        parsed = parse_message(handle.read())
    return {(position, hashlib.sha256(item.data).hexdigest()): item.text
            for position, item in enumerate(parsed.attachments) if item.content_type.startswith("text/")}
