import mailbox as mailbox_formats
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from mailboxes.inbound import ingest
from tests.mailboxes.counters_check import counters_exact
from mailboxes.models import Email
from tests.mailboxes.inbound_helpers import make_message

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
    assert "imported 4, with defects 1, failed 0, skipped 0 (of 4)" in out
    assert sorted(Email.objects.filter(mailbox=mailbox).values_list("subject", flat=True)) == [
        "Archived 0", "Archived 1", "Archived 2", "broken"]
    counters_exact(mailbox)


def test_import_of_a_folder_of_eml_files_keeps_raw_bytes_and_reply_threads(mailbox, tmp_path):
    first = make_message(subject="Plan", message_id="p1@x")
    reply = make_message(subject="Re: Plan", message_id="p2@x", in_reply_to="p1@x", references=["p1@x"])
    (tmp_path / "nested").mkdir()
    (tmp_path / "1.eml").write_bytes(first)
    (tmp_path / "nested" / "2.eml").write_bytes(reply)
    (tmp_path / "notes.txt").write_text("not mail")
    out, _ = run_import(mailbox.address, str(tmp_path), "--read")
    assert "imported 2, with defects 0, failed 0, skipped 1 (of 3)" in out
    assert "skipped 1, not a message: it does not start with a header line (Name: value): notes.txt" in out
    emails = list(Email.objects.filter(mailbox=mailbox).order_by("subject"))
    assert len({e.thread_id for e in emails}) == 1 and all(e.is_read for e in emails)
    with emails[0].raw.open("rb") as handle:
        assert handle.read() == first


def test_import_to_an_unhosted_address_is_an_error(db, tmp_path):
    with pytest.raises(CommandError):
        run_import("nobody@nowhere.example", str(tmp_path))


def _archive(tmp_path, subjects):
    path = tmp_path / "archive.mbox"
    box = mailbox_formats.mbox(str(path))
    for subject in subjects:
        box.add(make_message(subject=subject, text=f"About {subject}.\n",
                             attachments=[("notes.txt", "text/plain", b"notes")]))
    box.flush()
    return str(path)


def _stored_files(mailbox):
    folder = f"raw/{mailbox.account_id}"
    return len(default_storage.listdir(folder)[1]) if default_storage.exists(folder) else 0


def test_batched_import_skips_a_failing_message_alone_and_keeps_the_rest(mailbox, tmp_path, monkeypatch):
    real = ingest._email_store

    def failing_for_one(**kwargs):
        email = real(**kwargs)
        if email.subject == "Archived 1":
            raise OSError("disk trouble")  # after its rows, files and (on PostgreSQL) counters were written
        return email

    monkeypatch.setattr(ingest, "_email_store", failing_for_one)
    out, err = run_import(mailbox.address, _archive(tmp_path, [f"Archived {i}" for i in range(5)]), "--batch", "3")
    assert "imported 4, with defects 0, failed 1, skipped 0 (of 5)" in out and "disk trouble" in err
    assert sorted(Email.objects.filter(mailbox=mailbox).values_list("subject", flat=True)) == [
        "Archived 0", "Archived 2", "Archived 3", "Archived 4"]
    assert _stored_files(mailbox) == 4
    counters_exact(mailbox)


def test_batched_import_keeps_what_fitted_and_stops_when_storage_is_full(mailbox, tmp_path):
    path = _archive(tmp_path, [f"Archived {i}" for i in range(4)])
    one = len(make_message(subject="Archived 0", text="About Archived 0.\n",
                           attachments=[("notes.txt", "text/plain", b"notes")]))
    plan = mailbox.account.plan
    plan.storage_bytes = one * 2 + one // 2  # plans are admin-editable rows; room for two messages
    plan.save(update_fields=["storage_bytes"])
    out, err = run_import(mailbox.address, path, "--batch", "10")
    assert "imported 2, with defects 0, failed 1, skipped 0 (of 4)" in out and "Stopping." in err
    assert Email.objects.filter(mailbox=mailbox).count() == 2 and _stored_files(mailbox) == 2


def test_a_batch_that_rolls_back_deletes_the_files_its_messages_wrote(mailbox, tmp_path):
    with pytest.raises(RuntimeError):
        with ingest.ingest_batch():
            ingest.email_ingest(mailbox=mailbox, raw=make_message(subject="Gone"))
            assert _stored_files(mailbox) == 1
            raise RuntimeError("the batch fails after the message was stored")
    assert not Email.objects.filter(mailbox=mailbox).exists() and _stored_files(mailbox) == 0


def test_an_imported_archive_is_not_forwarded_nor_announced(owner, mailbox, tmp_path, smtp_relay, eager_tasks,
                                                            django_capture_on_commit_callbacks):
    """Your own archive is not new mail: a mailbox that forwards must not send it all out again."""
    from mailboxes.services import mailbox_update
    from tests.mailboxes.outbound_helpers import confirmed_forwarding
    from events.models import Event

    confirmed_forwarding(mailbox_update(mailbox=mailbox, forwarding_addresses=["me@personal.example"]))
    path = tmp_path / "archive.mbox"
    box = mailbox_formats.mbox(str(path))
    for index in range(5):
        box.add(make_message(subject=f"Old {index}"))
    box.flush()
    sent_before = len(smtp_relay.messages)  # the confirmation mail, if it went out
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run_import(mailbox.address, str(path))
    assert "imported 5" in out
    assert len(smtp_relay.messages) == sent_before
    assert not Event.objects.filter(account=owner, type="email.received").exists()
