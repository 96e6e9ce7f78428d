"""Build outbound MIME messages and DKIM-sign them.

Every value placed in a header goes through `header_value` (no CR, LF or other control character),
and the finished header block is checked against the names we wrote: Python here is not patched for
CVE-2024-6923, so a decoded inbound subject must never be able to start a header line of its own.
"""

import re
import uuid
from datetime import datetime, timezone as dt_timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import dkim

from qmailing.errors import Invalid

# C0/C1 controls, DEL and the Unicode line/paragraph separators some parsers treat as newlines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MESSAGE_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[A-Za-z0-9.\-\[\]:]{1,250}$")  # no <, >, spaces
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
MAX_REFERENCES = 20

DKIM_SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references", b"reply-to",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"x-qmailing-loop",
)


def header_value(value, *, limit=998):
    """One header line's worth of text: controls become spaces, runs of spaces collapse."""
    return re.sub(r"\s{2,}", " ", _CONTROL.sub(" ", str(value or ""))).strip()[:limit]


def safe_message_id(value):
    """A stored message id usable in In-Reply-To/References, or "" if it is not a plain msg-id."""
    value = header_value(value).strip("<>")
    return value if _MESSAGE_ID.match(value) else ""


def reply_subject(subject):
    subject = header_value(subject)
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".strip()


def new_message_id(*, domain_name):
    return f"{uuid.uuid4().hex}@{domain_name}"


def _address(name, address):
    local, _, domain = address.rpartition("@")
    return Address(display_name=header_value(name, limit=120), username=local, domain=domain)


def _content_type(value):
    value = header_value(value).lower()
    return value if _CONTENT_TYPE.match(value) else "application/octet-stream"


def build_message(*, sender, to, cc, subject, text, html, attachments, message_id, in_reply_to="", references=()):
    """The message as CRLF bytes. `sender`, `to`, `cc` are (name, address) pairs; Bcc never goes in."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = _address(*sender)
    if to:
        message["To"] = [_address(*pair) for pair in to]
    if cc:
        message["Cc"] = [_address(*pair) for pair in cc]
    message["Subject"] = header_value(subject)
    message["Date"] = format_datetime(datetime.now(dt_timezone.utc), usegmt=True)
    message["Message-ID"] = f"<{message_id}>"
    written = {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
               "content-transfer-encoding"}
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        written.add("in-reply-to")
    if references:
        message["References"] = " ".join(f"<{ref}>" for ref in references)
        written.add("references")
    message["MIME-Version"] = "1.0"
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for filename, content_type, content in attachments:
        maintype, subtype = _content_type(content_type).split("/", 1)
        message.add_attachment(bytes(content), maintype=maintype, subtype=subtype,
                               filename=header_value(filename, limit=255) or "attachment")
    raw = message.as_bytes()
    _check_header_block(raw, allowed=written)
    return raw


def _check_header_block(raw, *, allowed):
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation of the previous header
        name = line.split(b":", 1)[0].decode("ascii", "replace").strip().lower()
        if name not in allowed:
            raise Invalid("The message could not be built safely (an unexpected header appeared).", code="unsafe_header")


def dkim_sign(*, raw, domain):
    """Prepend a DKIM-Signature made with the domain's key (relaxed/relaxed, rsa-sha256)."""
    signature = dkim.sign(
        raw,
        selector=domain.dkim_selector.encode("ascii"),
        domain=domain.name.encode("ascii"),
        privkey=domain.dkim_private_key.encode("ascii"),
        include_headers=[name for name in DKIM_SIGNED_HEADERS],
        canonicalize=(b"relaxed", b"relaxed"),
        linesep=b"\r\n",
    )
    return signature + raw
