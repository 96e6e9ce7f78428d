import mailbox as mailbox_formats
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mailboxes.counters import mailbox_counters_recompute
from mailboxes.models import Email
from tests.mailboxes.inbound_helpers import make_message, mailbox  # noqa: F401 (fixtures)

BROKEN = b"Subject: =?x-nope?Q?broken?=\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all\r\n"


def run_import(*args):
    out, err = StringIO(), StringIO()
    call_command("import_mail", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_of_an_mbox_stores_every_message_and_prints_a_summary(mailbox, tmp_path):
    path = tmp_path / "archive.mbox"
    box = mailbox_formats.mbox(str(path))
    for index in range(3):
        box.add(make_message(subject=f"Archived {index}", message_id=f"arch{index}@x"))
    box.add(BROKEN)
    box.flush()
    out, _ = run_import(mailbox.address, str(path))
    assert "imported 4, with defects 1, failed 0 (of 4)" in out
    assert sorted(Email.objects.filter(mailbox=mailbox).values_list("subject", flat=True)) == [
        "Archived 0", "Archived 1", "Archived 2", "broken"]
    mailbox.refresh_from_db()
    live = (mailbox.message_count, mailbox.unread_count, mailbox.storage_used)
    assert live == tuple(getattr(mailbox_counters_recompute(mailbox=mailbox), f)
                         for f in ("message_count", "unread_count", "storage_used"))


def test_import_of_a_folder_of_eml_files_keeps_raw_bytes_and_reply_threads(mailbox, tmp_path):
    first = make_message(subject="Plan", message_id="p1@x")
    reply = make_message(subject="Re: Plan", message_id="p2@x", in_reply_to="p1@x", references=["p1@x"])
    (tmp_path / "nested").mkdir()
    (tmp_path / "1.eml").write_bytes(first)
    (tmp_path / "nested" / "2.eml").write_bytes(reply)
    (tmp_path / "notes.txt").write_text("not mail")
    out, _ = run_import(mailbox.address, str(tmp_path), "--read")
    assert "imported 2, with defects 0, failed 0 (of 2)" in out
    emails = list(Email.objects.filter(mailbox=mailbox).order_by("subject"))
    assert len({e.thread_id for e in emails}) == 1 and all(e.is_read for e in emails)
    with emails[0].raw.open("rb") as handle:
        assert handle.read() == first


def test_import_to_an_unhosted_address_is_an_error(db, tmp_path):
    with pytest.raises(CommandError):
        run_import("nobody@nowhere.example", str(tmp_path))
