"""Build outbound MIME messages and DKIM-sign them.

Python here is not patched for CVE-2024-6923: a header value holding an RFC 2047 encoded word is
decoded by the header registry when it is set, and a CR or LF inside comes out raw when the message is
folded, starting a header line (or a body) of its own. So every value placed in a header, from any
source (a form, stored mail, mailbox settings, the API), goes through `header_value`, which decodes
encoded words itself, to a fixpoint, and removes control characters from the result; no encoded word is
left for the registry to decode. Then the serialised message must parse back to exactly the headers we
meant to write (`check_header_block`).
"""

import re
import uuid
from email.errors import HeaderParseError
from email.header import decode_header
from datetime import datetime, timezone as dt_timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

import dkim

from qmailing.errors import Invalid

# C0/C1 controls (NEL is \x85), DEL and the Unicode line/paragraph separators some parsers treat as newlines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# An RFC 2047 encoded word, as loosely as Python's header parser recognises one (it decodes these too).
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[^?\s]*\?[^\s]*?\?=")
# Rounds of decoding before what is still encoded is defused instead: an encoded word inside an encoded
# word inside … is an attack, never mail.
MAX_DECODE_ROUNDS = 4
# The header block of any message we hand on (sent, forwarded): Postfix's header_size_limit. Parsing a
# bigger one (a To of 10,000 addresses) costs seconds per copy, and no legitimate message needs it.
MAX_HEADER_BLOCK_BYTES = 102_400
_MESSAGE_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[A-Za-z0-9.\-\[\]:]{1,250}$")  # no <, >, spaces
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|fw)\s*:", re.IGNORECASE)
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
MAX_REFERENCES = 20

DKIM_SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references", b"reply-to",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"x-qmailing-loop",
)


def _decoded_word(match):
    word = match.group(0)
    try:
        (data, charset), = decode_header(word)
        if isinstance(data, str):  # not an encoded word after all: defuse it
            return word.replace("=?", "= ?")
        return data.decode(charset or "ascii", "replace")
    except (HeaderParseError, LookupError, ValueError):
        return word.replace("=?", "= ?")


def _decoded(value):
    """Encoded words decoded, nested ones too, controls kept; what is still encoded after
    MAX_DECODE_ROUNDS is defused ("=?" → "= ?") so that no header parser can decode it later."""
    text = str(value or "")
    for _ in range(MAX_DECODE_ROUNDS):
        if not _ENCODED_WORD.search(text):
            return text
        text = _ENCODED_WORD.sub(_decoded_word, text)
    return _ENCODED_WORD.sub(lambda match: match.group(0).replace("=?", "= ?"), text)


def header_text(value):
    """The text a header value really says: encoded words decoded, every control character a space.

    The result holds no CR, LF, NEL, U+2028 or other control character, and no encoded word.
    """
    return _CONTROL.sub(" ", _decoded(value))


def header_value(value, *, limit=998):
    """One header line's worth of text (see header_text); runs of spaces collapse."""
    return re.sub(r"\s{2,}", " ", header_text(value)).strip()[:limit]


def has_control_characters(value):
    """Whether input holds a line break or another control character, raw or inside an encoded word."""
    return bool(_CONTROL.search(_decoded(value)))


def safe_message_id(value):
    """A stored message id usable in In-Reply-To/References, or "" if it is not a plain msg-id."""
    value = header_value(value).strip("<>")
    return value if _MESSAGE_ID.match(value) else ""


def reply_subject(subject):
    subject = header_value(subject)
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".strip()


def forward_subject(subject):
    subject = header_value(subject)
    return subject if _FORWARD_PREFIX.match(subject) else f"Fwd: {subject}".strip()


def reply_recipients(email):
    """Who a reply to `email` goes to: its Reply-To or sender; for our own sent mail, its recipients."""
    if email.direction == "outbound":
        people = email.to  # replying to our own sent message continues with its recipients
    else:
        people = email.reply_to or [{"address": email.from_address, "name": email.from_name}]
    return [person["address"] for person in people or () if person.get("address")]


def reply_all_recipients(email, *, own_address):
    """(to, cc) of a reply to everyone: the reply's recipients, then everyone else on To and Cc, once each,
    leaving out the replying mailbox itself."""
    to = reply_recipients(email)
    seen = {address.lower() for address in to} | {own_address.lower()}
    cc = []
    people = (email.cc or ()) if email.direction == "outbound" else [*(email.to or ()), *(email.cc or ())]
    for person in people:
        address = person.get("address") or ""
        if address and address.lower() not in seen:
            seen.add(address.lower())
            cc.append(address)
    return [address for address in to if address.lower() != own_address.lower()] or to, cc


def _person(name, address):
    return f"{header_value(name, limit=120)} <{address}>" if name else address


def forwarded_header_lines(email):
    """The "Forwarded message" block put above a forwarded email's text: who, when, what, to whom."""
    when = email.date or email.received_at
    lines = ["---------- Forwarded message ---------", f"From: {_person(email.from_name, email.from_address)}",
             f"Date: {format_datetime(when) if when else ''}", f"Subject: {header_value(email.subject)}",
             "To: " + ", ".join(_person(p.get("name", ""), p.get("address", "")) for p in email.to or ())]
    if email.cc:
        lines.append("Cc: " + ", ".join(_person(p.get("name", ""), p.get("address", "")) for p in email.cc))
    return lines


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
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        message["References"] = " ".join(f"<{ref}>" for ref in references)
    message["MIME-Version"] = "1.0"
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")
    for filename, content_type, content in attachments:
        maintype, subtype = _content_type(content_type).split("/", 1)
        message.add_attachment(bytes(content), maintype=maintype, subtype=subtype,
                               filename=header_value(filename, limit=255) or "attachment")
    raw = message.as_bytes()
    check_header_block(raw, intended=[(name, str(value)) for name, value in message.items()])
    return raw


def _header_block(raw):
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def check_header_block(raw, *, intended):
    """Refuse to hand on a message whose header block does not parse back to exactly `intended`.

    `intended` is [(name, value)] as set on the message. Parsing the serialised bytes again catches
    what any folding bug could do: a second From, a Bcc, or headers ended early so that the rest of
    a value becomes the body.
    """
    head = _header_block(raw)
    if len(head) > MAX_HEADER_BLOCK_BYTES:
        raise Invalid(f"The message headers exceed {MAX_HEADER_BLOCK_BYTES} bytes.", code="unsafe_header")
    parsed = BytesParser(policy=policy.SMTP).parsebytes(head, headersonly=True)
    found = [(name.lower(), " ".join(str(value).split())) for name, value in parsed.items()]
    wanted = [(name.lower(), " ".join(value.split())) for name, value in intended]
    if found != wanted or parsed.defects:
        raise Invalid("The message could not be built safely (its headers did not read back as written).",
                      code="unsafe_header")


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
