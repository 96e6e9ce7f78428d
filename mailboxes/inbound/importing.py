"""Reading mail archives for `import_mail`: a Maildir, an mbox, one message file, or a folder of them.

Every file is judged by what it holds, never by its name: an extension-less file or a `.msg` that
holds an RFC 5322 message is imported, an `.eml` that holds a PDF is not. What is not imported is
yielded as Skipped with a reason from a short fixed list, so a report can group by it.
"""

import mailbox as mailbox_formats
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mailboxes.models import Folder

# How much of a file is read to decide whether it is a message.
HEAD_BYTES = 8192

EMPTY = "empty"
OLE2 = ("an OLE2 compound file (an Outlook .msg or an old Office document), not an RFC 5322 message; "
        "save it as .eml first")
PDF = "a PDF document"
ARCHIVE = "a zip or compressed archive; unpack it and import what is inside"
IMAGE = "an image"
TNEF = "a TNEF (winmail.dat) attachment, not a message"
UTF16 = "UTF-16 text, not a message as mail carries it"
BINARY = "binary data, not a message"
NO_HEADER = "not a message: it does not start with a header line (Name: value)"
NO_MAIL_HEADER = "not a message: none of its header lines is a mail header (From, To, Subject, Date, Received, ...)"
MAILDIR_TMP = "in a Maildir tmp/ folder (a delivery that never finished)"
NOT_A_FILE = "not a regular file"
UNREADABLE = "cannot be read"
BAD_MBOX = "cannot be read as an mbox file"

_SIGNATURES = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE2),
    (b"%PDF-", PDF),
    (b"PK\x03\x04", ARCHIVE), (b"PK\x05\x06", ARCHIVE), (b"PK\x07\x08", ARCHIVE),
    (b"\x1f\x8b", ARCHIVE), (b"\xfd7zXZ\x00", ARCHIVE), (b"7z\xbc\xaf\x27\x1c", ARCHIVE), (b"Rar!\x1a\x07", ARCHIVE),
    (b"BZh", ARCHIVE),
    (b"\x89PNG\r\n\x1a\n", IMAGE), (b"\xff\xd8\xff", IMAGE), (b"GIF87a", IMAGE), (b"GIF89a", IMAGE),
    (b"\x78\x9f\x3e\x22", TNEF),
    (b"\xff\xfe", UTF16), (b"\xfe\xff", UTF16),
)
# A header field's name (printable ASCII but the colon), then the colon; RFC 5322 4.5 allows blanks before it.
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
# Fields that show a header block is a message's. A block of "Name: value" lines without one of these
# (a vCard, a Debian control file, notes) is not mail.
_MAIL_FIELDS = frozenset({
    b"from", b"sender", b"to", b"cc", b"bcc", b"reply-to", b"subject", b"date", b"message-id", b"in-reply-to",
    b"references", b"received", b"return-path", b"delivered-to", b"x-original-to", b"envelope-to",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"dkim-signature", b"domainkey-signature",
    b"arc-seal", b"arc-message-signature", b"arc-authentication-results", b"authentication-results",
    b"received-spf", b"x-received", b"list-id", b"list-unsubscribe", b"newsgroups", b"x-mailer", b"user-agent",
    b"x-gm-thrid", b"x-gmail-labels", b"x-mozilla-status", b"x-mozilla-status2", b"x-account-key", b"x-uidl",
    b"thread-topic", b"thread-index", b"delivery-date",
})
_MAIL_FIELD_PREFIXES = (b"resent-", b"arc-", b"x-ms-exchange-", b"x-google-", b"x-gm-")
# Control bytes no text file holds (tab, line ends, form feed and ESC of ISO-2022 text are allowed).
_BINARY_BYTE = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
# Maildir++ and mail-client folder names → the folder the import suggests for them.
_FOLDER_NAMES = {
    "sent": Folder.SENT, "sent messages": Folder.SENT, "sent items": Folder.SENT, "sent mail": Folder.SENT,
    "drafts": Folder.DRAFTS, "trash": Folder.TRASH, "deleted messages": Folder.TRASH, "deleted items": Folder.TRASH,
    "junk": Folder.SPAM, "spam": Folder.SPAM, "junk e-mail": Folder.SPAM, "junk email": Folder.SPAM,
    "archive": Folder.ARCHIVE, "archives": Folder.ARCHIVE,
}


@dataclass(frozen=True)
class Found:
    """A message to store: where it came from, its bytes, and whether the archive marks it as read."""

    label: str
    raw: bytes
    seen: bool = False


@dataclass(frozen=True)
class Skipped:
    """Something that is not stored; `reason` is one of the constants above, `detail` says more (an OS error)."""

    label: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class LeftOut:
    """A Maildir subfolder (Maildir++ `.Sent`, or `Sent/` beside cur/new) that is not read with its parent."""

    path: Path
    messages: int
    suggested_folder: str


def too_large_reason(max_bytes):
    size = f"{max_bytes / 2**20:g} MB" if max_bytes >= 2**20 else f"{max_bytes:,} bytes"
    return f"larger than the {size} message size cap (QMAILING_SMTP_MAX_MESSAGE_BYTES)"


def message_refusal(head: bytes) -> str | None:
    """Why a file starting with `head` (its first few KB) is not an RFC 5322 message, or None if it is one.

    It accepts what real mail looks like: an mbox "From " line first, Return-Path or Received first,
    any order of fields, bare LF line ends, 8-bit header values, NUL bytes after the header lines.
    It refuses known binary formats by their magic bytes, other binary data, and text whose leading
    "Name: value" lines include no mail header.
    """
    head = _unwrapped(head)
    if not head.strip():
        return EMPTY
    for magic, reason in _SIGNATURES:
        if head.startswith(magic):
            return reason
    lines = head.split(b"\n")
    if head.startswith(b"From "):
        lines = lines[1:]  # an mbox envelope line
    names = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t") and names:
            continue
        match = _FIELD.match(line)
        if match is None:
            # The blank line that ends the header block, or a line where a message's header block
            # breaks off (the parser records that as a defect).
            break
        names.append(match.group(1).lower())
    # Python package metadata, vCards and Debian control files are "Name: value" lines too.
    if any(name in _MAIL_FIELDS or name.startswith(_MAIL_FIELD_PREFIXES) for name in names):
        return None
    if _BINARY_BYTE.search(head[:1024]):
        return BINARY
    return NO_MAIL_HEADER if names else NO_HEADER


def _unwrapped(raw):
    # A byte-order mark or blank lines before the first header are how a file was saved, not part of
    # the message; left in, the parser would find no headers at all.
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    return raw.lstrip(b"\r\n") if raw[:1] in (b"\r", b"\n") else raw


def _is_maildir(path):
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _maildir_seen(name):
    # Maildir's info suffix ":2,<flags>" ("!2," where a colon cannot be in a file name); S is seen.
    for separator in (":2,", "!2,"):
        if separator in name:
            return "S" in name.rpartition(separator)[2]
    return False


def _message_files(maildir):
    return [entry for sub in ("cur", "new") for entry in os.scandir(maildir / sub)
            if not entry.name.startswith(".")]


def _suggested_folder(name):
    # Maildir++ names nest with dots (".INBOX.Sent", ".Archive.2023"): the innermost known name wins.
    for part in reversed(name.strip(".").split(".")):
        if part.lower() in _FOLDER_NAMES:
            return _FOLDER_NAMES[part.lower()]
    return Folder.INBOX


class ImportSource:
    """The messages under `path`, read lazily in a stable order: iterate for Found and Skipped items.

    `path` may be an mbox file, one message file, a Maildir (cur/ and new/ are read, tmp/ is
    skipped, subfolders are listed in `left_out`, not read) or a folder, walked recursively, of any
    of these. A file starting with "From " outside a Maildir is read as an mbox. `total` counts what
    was found; it grows as each mbox is opened, since its messages are only counted then.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None):
        self.path = Path(path)
        self.max_bytes = max_bytes or settings.QMAILING_SMTP_MAX_MESSAGE_BYTES
        self.left_out: list[LeftOut] = []
        self._entries = list(self._walk()) if self.path.is_dir() else [("file", self.path, self.path.name, "")]
        self.total = len(self._entries)

    def __iter__(self):
        for kind, path, label, detail in self._entries:
            if kind == "tmp":
                yield Skipped(label, MAILDIR_TMP)
            elif kind == "error":
                yield Skipped(label, UNREADABLE, detail)
            else:
                yield from self._file(path, label, in_maildir=kind == "maildir")

    def _walk(self):
        """(kind, path, label, detail) for every file under self.path; kind is file, maildir, tmp or error."""
        errors = []
        for directory, subdirectories, files in os.walk(self.path, onerror=errors.append):
            yield from self._errors(errors)
            here = Path(directory)
            if _is_maildir(here):
                subdirectories[:] = []  # a Maildir is read as one; its subfolders are listed, not walked
                yield from self._maildir(here)
                continue
            subdirectories.sort()
            for name in sorted(files):
                yield ("file", here / name, self._label(here / name), "")
        yield from self._errors(errors)

    def _errors(self, errors):
        for error in errors:
            path = Path(error.filename or self.path)
            yield ("error", path, self._label(path), error.strerror or str(error))
        errors.clear()

    def _maildir(self, maildir):
        # Listed by hand rather than with mailbox.Maildir: we want each file's path (for its label and
        # its seen flag) and to judge a file before reading it whole.
        try:
            found = sorted(_message_files(maildir), key=lambda entry: entry.name)
            waiting = sorted(os.listdir(maildir / "tmp")) if (maildir / "tmp").is_dir() else []
            subfolders = sorted((entry for entry in os.scandir(maildir)
                                 if entry.is_dir() and entry.name not in ("cur", "new", "tmp")
                                 and _is_maildir(Path(entry.path))), key=lambda entry: entry.name)
        except OSError as error:
            yield from self._errors([error])
            return
        for entry in found:
            yield ("maildir", Path(entry.path), self._label(Path(entry.path)), "")
        for name in waiting:
            yield ("tmp", maildir / "tmp" / name, self._label(maildir / "tmp" / name), "")
        for entry in subfolders:
            try:
                count = len(_message_files(Path(entry.path)))
            except OSError:
                count = 0
            self.left_out.append(LeftOut(Path(entry.path), count, _suggested_folder(entry.name)))

    def _label(self, path):
        if path == self.path:
            return path.name or str(path)
        try:
            return str(path.relative_to(self.path))
        except ValueError:
            return str(path)

    def _file(self, path, label, *, in_maildir):
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                yield Skipped(label, NOT_A_FILE)
                return
            with open(path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
                is_mbox = head.startswith(b"From ") and not in_maildir
                refusal = None if is_mbox else message_refusal(head)
                if refusal is None and not is_mbox and info.st_size > self.max_bytes:
                    refusal = too_large_reason(self.max_bytes)
                raw = None if is_mbox or refusal else head + handle.read(self.max_bytes + 1 - len(head))
        except OSError as error:
            yield Skipped(label, UNREADABLE, error.strerror or str(error))
            return
        if is_mbox:
            yield from self._mbox(path, label)
        elif refusal:
            yield Skipped(label, refusal)
        else:
            yield self._judged(label, raw, seen=in_maildir and path.parent.name == "cur" and _maildir_seen(path.name))

    def _mbox(self, path, label):
        try:
            box = mailbox_formats.mbox(str(path), create=False)
            keys = box.keys()
        except (OSError, mailbox_formats.Error) as error:
            yield Skipped(label, BAD_MBOX, str(error))
            return
        self.total += len(keys) - 1  # the file was counted as one
        try:
            for index, key in enumerate(keys):
                try:
                    # Read no further than the cap: one message of a large mbox may itself be huge.
                    with box.get_file(key) as handle:
                        raw = handle.read(self.max_bytes + 1)
                except OSError as error:
                    yield Skipped(f"{label}#{index}", UNREADABLE, error.strerror or str(error))
                    continue
                yield self._judged(f"{label}#{index}", raw)
        finally:
            box.close()

    def _judged(self, label, raw, *, seen=False):
        raw = _unwrapped(raw)
        refusal = message_refusal(raw[:HEAD_BYTES])
        if refusal is None and len(raw) > self.max_bytes:
            refusal = too_large_reason(self.max_bytes)
        return Skipped(label, refusal) if refusal else Found(label, raw, seen)


class SkipReport:
    """Skipped items counted by reason, keeping the first few labels of each: bounded for any number of files."""

    def __init__(self, *, names_per_reason=5):
        self.names_per_reason = names_per_reason
        self.counts = Counter()
        self.names = {}

    @property
    def count(self):
        return sum(self.counts.values())

    def add(self, skipped: Skipped):
        self.counts[skipped.reason] += 1
        names = self.names.setdefault(skipped.reason, [])
        if len(names) < self.names_per_reason:
            names.append(printable(skipped.label) + (f" ({skipped.detail})" if skipped.detail else ""))

    def lines(self):
        """One line per reason, most frequent first: `skipped N, <reason>: a, b, c and N more`."""
        for reason, count in self.counts.most_common():
            names = self.names[reason]
            more = f" and {count - len(names):,} more" if count > len(names) else ""
            yield f"skipped {count:,}, {reason}: {', '.join(names)}{more}"


def printable(text):
    """A file name safe to print: control characters and undecodable bytes shown as escapes."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return re.sub(r"[\x00-\x1f\x7f]", lambda match: f"\\x{ord(match.group()):02x}", text)
