"""import_mail reads what people have: Maildir, mbox, one message, folders of files judged by content."""

import gzip
import io
import random
import struct
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from mailboxes.inbound import importing
from mailboxes.inbound.importing import message_refusal
from mailboxes.models import Email, Folder
from tests.mailboxes.inbound.pdfs import text_pdf
from tests.mailboxes.inbound.test_import import run_import

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "import"
MESSAGES = ["mail_test_3", "mail_test_16", "mail_test_17", "generic_message.eml", "email_issue_82.eml",
            "message_with_utf8_char.eml"]


def sample(name):
    return (FIXTURES / name).read_bytes()


def without_from_line(raw):
    return raw.partition(b"\n")[2]


def outlook_msg_like():
    """The start of an Outlook .msg: an OLE2 compound file header, then directory entries named in UTF-16."""
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + bytes(6) + struct.pack("<IIIIIIII", 0, 1, 1, 0, 0x1000, 2, 1, 0xFFFFFFFE))
    header = header.ljust(512, b"\xff")
    names = ["Root Entry", "__properties_version1.0", "__substg1.0_0037001F", "__substg1.0_1000001F"]
    directory = b"".join(name.encode("utf-16-le").ljust(64, b"\0") + struct.pack("<H", 2 * len(name) + 2)
                         + bytes(62) for name in names)
    return header + directory.ljust(4096, b"\0")


def zipped(name, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def write(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def stored(mailbox):
    """{subject: (raw bytes, is_read, folder)} of what the mailbox holds."""
    result = {}
    for email in Email.objects.filter(mailbox=mailbox):
        with email.raw.open("rb") as handle:
            result[email.subject] = (handle.read(), email.is_read, email.folder)
    return result


def raw_files(mailbox):
    folder = f"raw/{mailbox.account_id}"
    return len(default_storage.listdir(folder)[1]) if default_storage.exists(folder) else 0


def test_a_maildir_is_read_from_cur_and_new_keeps_seen_flags_and_skips_tmp(mailbox, tmp_path):
    root = tmp_path / "Maildir"
    write(root, "cur/1476000001.M1P1.mx.example:2,S", sample("mail_test_3"))
    write(root, "cur/1476000002.M2P1.mx.example:2,", sample("generic_message.eml"))
    write(root, "new/1476000003.M3P1.mx.example", sample("mail_test_17"))
    write(root, "tmp/1476000004.M4P1.mx.example", sample("mail_test_16")[:300])  # still being delivered
    write(root, "dovecot-uidlist", b"3 V1476000000 N4\n1 1476000001.M1P1.mx.example\n")
    write(root, ".Sent/cur/1476000005.M5P1.mx.example:2,S", sample("message_with_utf8_char.eml"))
    write(root, ".Sent/maildirfolder", b"")
    (root / ".Sent/new").mkdir()
    write(root, ".Junk/new/1476000006.M6P1.mx.example", sample("mail_test_16"))
    (root / ".Junk/cur").mkdir()

    out, err = run_import(mailbox.address, str(root))

    assert "imported 3, with defects 1, failed 0, skipped 1 (of 4)" in out
    assert f"skipped 1, {importing.MAILDIR_TMP}: tmp/1476000004.M4P1.mx.example" in out
    assert (f"not imported: Maildir folder .Junk (1 message); import it on its own: "
            f"python manage.py import_mail {mailbox.address} {root / '.Junk'} --folder SPAM") in out
    assert "not imported: Maildir folder .Sent (1 message)" in out and "--folder SENT" in out
    emails = stored(mailbox)
    assert emails == {
        "Hi there": (sample("mail_test_3"), True, Folder.INBOX),  # :2,S is seen
        "Message Without Attachment": (sample("generic_message.eml"), False, Folder.INBOX),
        "Transferencia Interbancaria Banca en Línea": (sample("mail_test_17"), False, Folder.INBOX),
    }

    # A Maildir++ subfolder is a Maildir itself: the command the report suggests imports it.
    out, _ = run_import(mailbox.address, str(root / ".Sent"), "--folder", "SENT")
    assert "imported 1, with defects 0, failed 0, skipped 0 (of 1)" in out
    assert stored(mailbox)["RE: Fwd: Stuff"][1:] == (True, Folder.SENT)


def test_a_folder_of_files_is_judged_by_content_not_by_name(mailbox, tmp_path):
    root = tmp_path / "export"
    write(root, "mail_test_16", sample("mail_test_16"))
    write(root, "mail_test_3", sample("mail_test_3"))
    write(root, "2016/mail_test_17", sample("mail_test_17"))
    write(root, "note.msg", sample("generic_message.eml"))  # text mail named .msg, as some clients save it
    write(root, "meeting.msg", outlook_msg_like())
    write(root, "invoice.eml", text_pdf(["Invoice 2016-114"]))
    write(root, "mail-export.zip", zipped("mail_test_3.eml", sample("mail_test_3")))
    write(root, "empty", b"")
    write(root, "blank", b"\r\n\r\n")
    write(root, "noise.bin", random.Random(7).randbytes(4096))
    write(root, "notes.txt", b"Call Alice about the quarterly figures.\n")
    write(root, "alice.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice Example\r\nEND:VCARD\r\n")
    # A Thunderbird folder: an extension-less mbox beside its .msf index.
    write(root, "Inbox", sample("email_issue_82.eml") + b"\nFrom MAILER-DAEMON Sat Jan  5 17:59:14 2013\n"
          + sample("message_with_utf8_char.eml"))
    write(root, "Inbox.msf", b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n< <(a=c)> // (f=iso-8859-1)\n")

    out, err = run_import(mailbox.address, str(root), "--batch", "4")

    assert "imported 6, with defects 2, failed 0, skipped 9 (of 15)" in out, out + err
    for line in [f"skipped 1, {importing.OLE2}: meeting.msg",
                 f"skipped 1, {importing.PDF}: invoice.eml",
                 f"skipped 1, {importing.ARCHIVE}: mail-export.zip",
                 f"skipped 2, {importing.EMPTY}: blank, empty",
                 f"skipped 1, {importing.BINARY}: noise.bin",
                 f"skipped 2, {importing.NO_HEADER}: Inbox.msf, notes.txt",
                 f"skipped 1, {importing.NO_MAIL_HEADER}: alice.vcf"]:
        assert line in out.splitlines(), (line, out)
    emails = stored(mailbox)
    assert {subject: raw for subject, (raw, _, _) in emails.items()} == {
        "Test spam mail (GTUBE)": sample("mail_test_16"),
        "Hi there": sample("mail_test_3"),
        "Transferencia Interbancaria Banca en Línea": sample("mail_test_17"),
        "Message Without Attachment": sample("generic_message.eml"),
        # Read as an mbox: the "From " envelope lines are not part of the messages.
        "character issue.": without_from_line(sample("email_issue_82.eml")),
        "RE: Fwd: Stuff": sample("message_with_utf8_char.eml"),
    }
    assert raw_files(mailbox) == 6  # nothing of the skipped files reached storage


def test_an_mbox_of_real_messages_skips_an_empty_entry(mailbox, tmp_path):
    path = tmp_path / "archive.mbox"
    path.write_bytes(b"From MAILER-DAEMON Mon Aug 22 13:56:15 2016\n" + sample("mail_test_3") + b"\n"
                     b"From MAILER-DAEMON Mon Aug 22 13:57:00 2016\n\n"
                     b"From MAILER-DAEMON Wed Jul 23 23:30:00 2003\n" + sample("mail_test_16") + b"\n")
    out, _ = run_import(mailbox.address, str(path))
    assert "imported 2, with defects 0, failed 0, skipped 1 (of 3)" in out
    assert f"skipped 1, {importing.EMPTY}: archive.mbox#1" in out
    assert sorted(stored(mailbox)) == ["Hi there", "Test spam mail (GTUBE)"]


def test_a_single_message_file_is_imported_and_a_single_outlook_file_is_refused(mailbox, tmp_path):
    message = write(tmp_path, "mail_test_17", sample("mail_test_17"))
    out, _ = run_import(mailbox.address, str(message))
    assert "imported 1, with defects 1, failed 0, skipped 0 (of 1)" in out
    with_envelope = write(tmp_path, "email_issue_82.eml", sample("email_issue_82.eml"))
    out, _ = run_import(mailbox.address, str(with_envelope))
    assert "imported 1, with defects 1, failed 0, skipped 0 (of 1)" in out
    outlook = write(tmp_path, "Project kickoff.msg", outlook_msg_like())
    out, _ = run_import(mailbox.address, str(outlook))
    assert out.splitlines() == ["imported 0, with defects 0, failed 0, skipped 1 (of 1)",
                                f"skipped 1, {importing.OLE2}: Project kickoff.msg"]
    assert {subject: raw for subject, (raw, _, _) in stored(mailbox).items()} == {
        "Transferencia Interbancaria Banca en Línea": sample("mail_test_17"),
        "character issue.": without_from_line(sample("email_issue_82.eml")),
    }


def test_a_message_over_the_size_cap_is_refused_in_a_folder_and_in_an_mbox(mailbox, tmp_path, settings):
    settings.QMAILING_SMTP_MAX_MESSAGE_BYTES = 2000
    write(tmp_path, "big", sample("mail_test_17"))  # 5,739 bytes
    write(tmp_path, "small", sample("mail_test_16"))
    write(tmp_path, "big.pdf", text_pdf(["x" * 80] * 40))  # named for what it is, not for its size
    write(tmp_path, "archive", b"From a@example.com Sat Jan  5 17:59:14 2013\n" + sample("message_with_utf8_char.eml")
          + b"\nFrom b@example.com Sun Jan 20 11:53:53 2013\n" + sample("generic_message.eml"))
    out, _ = run_import(mailbox.address, str(tmp_path))
    assert "imported 2, with defects 0, failed 0, skipped 3 (of 5)" in out
    assert f"skipped 2, {importing.too_large_reason(2000)}: archive#0, big" in out
    assert "larger than the 2,000 bytes message size cap (QMAILING_SMTP_MAX_MESSAGE_BYTES)" in out
    assert f"skipped 1, {importing.PDF}: big.pdf" in out
    assert sorted(stored(mailbox)) == ["Message Without Attachment", "Test spam mail (GTUBE)"]


def test_the_report_stays_short_for_a_folder_of_many_non_messages(mailbox, tmp_path):
    for number in range(300):
        write(tmp_path, f"note-{number:03}.txt", b"Shopping list: milk, bread\n")
    write(tmp_path, "mail_test_16", sample("mail_test_16"))
    out, err = run_import(mailbox.address, str(tmp_path), "--batch", "50")
    assert out.splitlines() == [
        "imported 1, with defects 0, failed 0, skipped 300 (of 301)",
        f"skipped 300, {importing.NO_HEADER}: note-000.txt, note-001.txt, note-002.txt, note-003.txt, "
        "note-004.txt and 295 more"]
    assert "note-" not in err


LF = b"\n"


def _received_chain(count):
    return b"".join(b"Received: from relay%d.example.net (relay%d.example.net [192.0.2.%d])\n"
                    b"\tby mx.example.org with ESMTPS id %d; Mon, 1 Jan 2024 00:00:00 +0000\n"
                    % (n, n, n % 250, n) for n in range(count))


@pytest.mark.parametrize("raw", [
    *(sample(name) for name in MESSAGES),
    sample("mail_test_17").replace(b"\r\n", LF),  # bare LF
    sample("mail_test_3").replace(LF, b"\r\n"),  # CRLF
    b"From MAILER-DAEMON Wed Jul 23 23:30:00 2003\n" + sample("mail_test_16"),
    b"\xef\xbb\xbf" + sample("generic_message.eml"),  # saved with a byte-order mark
    b"\r\n\r\n" + sample("generic_message.eml"),  # saved after blank lines
    b"Subject : an obsolete space before the colon\n\nbody\n",
    b"X-Unknown: first\nX-Also-Unknown: second\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody\n",
    _received_chain(200) + b"From: a@example.com\n\nbody\n",  # header lines past the first 8 KB
    sample("mail_test_16") + b"\x00\x00",  # NUL bytes after the header lines, as some real mail ends
    b"Subject: caf\xc3\xa9 ol\xe9\nFrom: b@example.com\n\nraw 8-bit header values\n",
    b"Delivered-To: a@example.com\nX-Junk: \x01\x02 control bytes in a value\n\nbody\n",
], ids=[*MESSAGES, "bare-lf", "crlf", "from-line", "bom", "leading-blank-lines", "obsolete-colon",
        "unknown-fields-first", "long-header", "trailing-nul", "8-bit-header", "control-in-value"])
def test_real_message_shapes_look_like_messages(raw):
    assert message_refusal(raw[:importing.HEAD_BYTES]) is None


@pytest.mark.parametrize("raw, reason", [
    (outlook_msg_like(), importing.OLE2),
    (text_pdf(["hello"]), importing.PDF),
    (zipped("a.eml", b"Subject: hi\n\nbody\n"), importing.ARCHIVE),
    (gzip.compress(b"From: a@example.com\n\nbody\n"), importing.ARCHIVE),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), importing.IMAGE),
    (b"\x78\x9f\x3e\x22\x00\x00\x01\x90", importing.TNEF),
    (sample("generic_message.eml").decode().encode("utf-16"), importing.UTF16),
    (b"", importing.EMPTY),
    (b"\n \r\n\t\n", importing.EMPTY),
    (random.Random(1).randbytes(8192), importing.BINARY),
    (b"SQLite format 3\x00" + bytes(200), importing.BINARY),
    (b"Call Alice about the figures.\n", importing.NO_HEADER),
    (b"<html><body>Hello</body></html>\n", importing.NO_HEADER),
    (b'{"from": "a@example.com", "subject": "hi"}\n', importing.NO_MAIL_HEADER),  # a field named '{"from"'
    (b" Subject: a continuation line first\n\nbody\n", importing.NO_HEADER),
    (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice\r\nEND:VCARD\r\n", importing.NO_MAIL_HEADER),
    (b"Metadata-Version: 2.1\nName: toml\nVersion: 0.10.2\nSummary: TOML\n" + b"Classifier: x\n" * 400,
     importing.NO_MAIL_HEADER),
], ids=["ole2", "pdf", "zip", "gzip", "png", "tnef", "utf-16", "empty", "blank", "random", "sqlite", "text",
        "html", "json", "continuation-first", "vcard", "python-metadata"])
def test_files_that_are_not_messages_are_refused_with_a_reason(raw, reason):
    assert message_refusal(raw[:importing.HEAD_BYTES]) == reason
