"""Attachment text: extracted by a worker after the message is stored, within hard limits, then searchable."""

import time
from dataclasses import replace

import pytest

from mailboxes.inbound.extraction import PDF_LIMITS, attachments_extract, pdf_text
from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Extraction
from mailboxes.outbound.send import email_send
from mailboxes.store.search import email_search
from mailboxes.tasks import attachments_extract_task
from tests.mailboxes.inbound.pdfs import inflation_bomb_pdf, operator_flood_pdf, ordinary_pdf, text_pdf
from tests.mailboxes.inbound_helpers import make_message
from tests.timing import within

# Room for the child's start-up and a loaded machine, on top of the limit under test.
SLACK_SECONDS = within(3)


def _subjects(page):
    return [email.subject for email in page.items]


def test_an_ordinary_pdf_becomes_searchable_once_the_task_has_run(owner, mailbox, eager_tasks):
    email = email_ingest(mailbox=mailbox, raw=make_message(
        subject="Figures", attachments=[("figures.pdf", "application/pdf", ordinary_pdf(pages=3))]))
    assert email.attachments.get().extraction == Extraction.PENDING
    assert _subjects(email_search(account=owner, query="healthy northern")) == []
    attachments_extract_task.delay(str(email.pk))
    attachment = email.attachments.get()
    assert attachment.extraction == Extraction.DONE
    assert "Page 3: line 44: the quarterly figures for the northern region look healthy" in attachment.extracted_text
    assert _subjects(email_search(account=owner, query="healthy northern")) == ["Figures"]


@pytest.mark.latency
def test_the_reported_operator_flood_ends_within_its_limits_without_text():
    data = operator_flood_pdf()  # ten pages sharing one stream of 950,000 `() Tj`: 85.8 s inside SMTP before
    started = time.monotonic()
    result = pdf_text(data)
    assert time.monotonic() - started < PDF_LIMITS.seconds + SLACK_SECONDS
    assert result.state in (Extraction.DONE, Extraction.FAILED) and result.text == ""


@pytest.mark.latency
def test_operators_that_each_yield_text_are_stopped_by_the_memory_limit():
    started = time.monotonic()
    result = pdf_text(operator_flood_pdf(string=b"x"))  # PDFium needs ~570 MB for one such page
    assert time.monotonic() - started < PDF_LIMITS.seconds + SLACK_SECONDS
    assert result.state == Extraction.FAILED and result.text == ""


def test_a_stream_that_inflates_past_the_limit_is_refused_before_pdfium_reads_it():
    result = pdf_text(inflation_bomb_pdf(PDF_LIMITS.max_inflated_bytes + (16 << 20)))
    assert result.state == Extraction.FAILED and "inflate" in result.detail


@pytest.mark.latency
def test_the_wall_clock_limit_kills_the_child():
    limits = replace(PDF_LIMITS, seconds=1, cpu_seconds=60, memory_bytes=4 << 30)  # only the clock can stop it
    started = time.monotonic()
    result = pdf_text(operator_flood_pdf(string=b"x"), limits=limits)
    assert time.monotonic() - started < 1 + SLACK_SECONDS
    assert result.state == Extraction.FAILED and "killed" in result.detail


@pytest.mark.latency
def test_the_cpu_limit_ends_the_child():
    limits = replace(PDF_LIMITS, seconds=60, cpu_seconds=1, memory_bytes=4 << 30)
    started = time.monotonic()
    result = pdf_text(operator_flood_pdf(string=b"x"), limits=limits)
    assert time.monotonic() - started < 1 + SLACK_SECONDS
    assert result.state == Extraction.FAILED and "status" in result.detail


def test_pages_and_characters_are_capped_and_the_text_read_so_far_is_kept():
    result = pdf_text(text_pdf(["short"], pages=PDF_LIMITS.max_pages + 10))
    assert result.state == Extraction.DONE and "max_pages" in result.detail
    assert f"Page {PDF_LIMITS.max_pages}: short" in result.text
    assert f"Page {PDF_LIMITS.max_pages + 1}:" not in result.text
    result = pdf_text(ordinary_pdf(pages=3), limits=replace(PDF_LIMITS, max_chars=1000))
    assert result.state == Extraction.DONE and len(result.text) <= 1000 and "max_chars" in result.detail


def test_a_pdf_above_the_size_limit_is_not_read():
    result = pdf_text(ordinary_pdf(pages=2), limits=replace(PDF_LIMITS, max_bytes=100))
    assert result.state == Extraction.FAILED and "larger" in result.detail


def test_text_attachments_keep_their_declared_charset(mailbox):
    raw = (b"From: a@example.com\r\nTo: owner@example.org\r\nSubject: Menu\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the menu.\r\n"
           b"--b\r\nContent-Type: text/plain; charset=koi8-r\r\n"
           b"Content-Disposition: attachment; filename=menu.txt\r\n\r\n"
           + "Борщ и café".encode("koi8-r", errors="replace") + b"\r\n--b--\r\n")
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert attachments_extract(email_id=email.pk) == 1
    attachment = email.attachments.get()
    assert attachment.extraction == Extraction.DONE and attachment.extracted_text.startswith("Борщ и caf")


def test_the_email_time_budget_fails_what_is_left_and_a_repeated_task_does_nothing(mailbox):
    email = email_ingest(mailbox=mailbox, raw=make_message(attachments=[
        ("a.pdf", "application/pdf", text_pdf(["first"])), ("b.txt", "text/plain", b"second")]))
    assert attachments_extract(email_id=email.pk, seconds=0) == 2
    assert {a.extraction for a in email.attachments.all()} == {Extraction.FAILED}
    assert attachments_extract(email_id=email.pk) == 0


def test_attachments_without_text_are_not_queued(mailbox):
    email = email_ingest(mailbox=mailbox, raw=make_message(attachments=[("logo.png", "image/png", b"\x89PNG\r\n")]))
    assert email.attachments.get().extraction == Extraction.NONE
    assert attachments_extract(email_id=email.pk) == 0


@pytest.mark.latency
def test_compose_with_the_hostile_pdf_returns_at_once_and_the_sent_copy_waits_for_the_worker(owner, sender):
    started = time.monotonic()
    copy = email_send(account=owner, mailbox=sender, to=["bob@elsewhere.example"], subject="Report",
                      attachments=[("report.pdf", "application/pdf", operator_flood_pdf())])
    assert time.monotonic() - started < within(2)
    assert copy.attachments.get().extraction == Extraction.PENDING


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ingest_enqueues_one_task_per_email_after_commit(mailbox, eager_tasks):
    raw = make_message(attachments=[("a.pdf", "application/pdf", text_pdf(["alpha beta"])),
                                    ("b.txt", "text/plain", b"gamma delta")])
    email = email_ingest(mailbox=mailbox, raw=raw)  # autocommit: on_commit runs the (eager) task at once
    assert [(a.extraction, a.extracted_text.strip()) for a in email.attachments.order_by("position")] == [
        (Extraction.DONE, "Page 1: alpha beta"), (Extraction.DONE, "gamma delta")]


def test_attachments_whose_task_was_lost_are_swept_up_and_extracted(owner, mailbox, eager_tasks):
    """A broker away at commit loses the task; the beat sweep enqueues the email again."""
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import Attachment, Email
    from mailboxes.tasks import mail_work_sweep_task
    from tests.mailboxes.outbound_helpers import receive

    email = receive(mailbox, subject="Lost", attachments=[("minutes.txt", "text/plain", b"the heron committee")])
    assert Attachment.objects.get(email=email).extraction == "pending"  # no commit here: the task never ran
    assert mail_work_sweep_task()["extractions"] == 0  # too recent to be called lost
    Email.objects.filter(pk=email.pk).update(received_at=timezone.now() - timedelta(hours=1))
    assert mail_work_sweep_task()["extractions"] == 1
    attachment = Attachment.objects.get(email=email)
    assert attachment.extraction == "done" and "heron" in attachment.extracted_text
    assert mail_work_sweep_task()["extractions"] == 0
