"""Build outbound MIME messages and DKIM-sign them.

Python here is not patched for CVE-2024-6923: a header value holding an RFC 2047 encoded word is
decoded by the header registry when it is set, and a CR or LF inside comes out raw when the message is
folded, starting a header line (or a body) of its own. So every value placed in a header, from any
source (a form, stored mail, mailbox settings, the API), goes through `header_value`, which decodes
encoded words itself, to a fixpoint, and removes control characters from the result; no encoded word is
left for the registry to decode. Then the serialised message must parse back to exactly the headers we
meant to write (`check_header_block`).
"""

import base64
import binascii
import hashlib
import io
import re
import time
import uuid
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from datetime import datetime, timezone as dt_timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

import dkim
from dkim.canonicalization import CanonicalizationPolicy, compress_whitespace, strip_trailing_whitespace
from dkim.crypto import parse_pem_private_key

from mailboxes.inbound.parsing import ParsedMessage, parse_message
from core.errors import Invalid

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


def _message_template(*, sender, to, cc, subject, text, html, attachments, message_id, in_reply_to, references):
    """The message serialised by the email package with a placeholder line for each attachment's body.

    Returns (head, segments): the header block with its blank line, and the body cut where the
    attachments' base64 goes (one segment more than attachments). The email package would hold each
    attachment several times over (base64 text, its lines, the bytes of each part, the whole); the
    bodies are spliced in by _body_pieces instead, byte for byte what as_bytes() writes for them.
    """
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
    placeholders = []
    for filename, content_type, _ in attachments:
        maintype, subtype = _content_type(content_type).split("/", 1)
        message.add_attachment(b"", maintype=maintype, subtype=subtype,
                               filename=header_value(filename, limit=255) or "attachment")
        placeholders.append(f"qmailing-attachment-{uuid.uuid4().hex}")
        # The part's headers do not depend on its bytes; its body is written line by line, each line + CRLF.
        message.get_payload()[-1].set_payload(placeholders[-1] + "\n")
    raw = message.as_bytes()
    check_header_block(raw, intended=[(name, str(value)) for name, value in message.items()])
    end = raw.index(b"\r\n\r\n") + 4
    head, segments, start = raw[:end], [], end
    for placeholder in placeholders:
        # A placeholder stands alone on the line after its part's headers; user text cannot guess one.
        at = raw.index(b"\r\n\r\n" + placeholder.encode() + b"\r\n", start) + 4
        segments.append(raw[start:at])
        start = at + len(placeholder) + 2
    segments.append(raw[start:])
    return head, segments


# An attachment's base64 as the email package writes it under policy.SMTP: 57 bytes (76 characters) a line.
_BASE64_LINE_BYTES = policy.SMTP.max_line_length // 4 * 3
_BASE64_CHUNK_BYTES = _BASE64_LINE_BYTES * 1024  # written and hashed ~78 KB at a time
_BASE64_LINE = re.compile(rb".{1,%d}" % (_BASE64_LINE_BYTES // 3 * 4), re.DOTALL)


def _body_pieces(segments, attachments):
    """The body in pieces that each end at a line end: the template's segments, the attachments' base64."""
    for segment, (_, _, content) in zip(segments, attachments):
        yield segment
        view = memoryview(content)
        for start in range(0, len(view), _BASE64_CHUNK_BYTES):
            # Whole lines per chunk, so encoding the chunk at once gives the email package's lines.
            encoded = binascii.b2a_base64(view[start:start + _BASE64_CHUNK_BYTES], newline=False)
            yield b"\r\n".join(_BASE64_LINE.findall(encoded)) + b"\r\n"
    yield segments[-1]


def _written(*pieces_lists):
    buffer = io.BytesIO()
    for pieces in pieces_lists:
        for piece in pieces:
            buffer.write(piece)
    return buffer.getvalue()  # BytesIO hands over its buffer: no second copy of the message


def build_message(*, sender, to, cc, subject, text, html, attachments, message_id, in_reply_to="", references=()):
    """The message as CRLF bytes. `sender`, `to`, `cc` are (name, address) pairs; Bcc never goes in."""
    head, segments = _message_template(sender=sender, to=to, cc=cc, subject=subject, text=text, html=html,
                                       attachments=attachments, message_id=message_id, in_reply_to=in_reply_to,
                                       references=references)
    return _written([head], _body_pieces(segments, attachments))


@dataclass
class SignedMessage:
    raw: bytes  # DKIM-Signature first, then the message, CRLF: what is stored and sent
    parsed: ParsedMessage  # parse_message(raw), but for the attachments' decoded text, which ingest never reads


def signed_message(*, domain, sender, to, cc, subject, text, html, attachments, message_id, in_reply_to="",
                   references=()) -> SignedMessage:
    """build_message then dkim_sign, holding the message once: the body is hashed as it is written.

    `parsed` is the message as parse_message reads it, found by parsing it without the attachments' base64
    and putting the attachments' own bytes in (base64 gives back exactly what it encoded), so storing the
    SENT copy does not parse the big message again.
    """
    head, segments = _message_template(sender=sender, to=to, cc=cc, subject=subject, text=text, html=html,
                                       attachments=attachments, message_id=message_id, in_reply_to=in_reply_to,
                                       references=references)
    body_hash = _RelaxedBodyHash()
    for piece in _body_pieces(segments, attachments):
        body_hash.update(piece)
    signature = _dkim_signature(head=head, body_hash=body_hash.digest(), domain=domain)
    raw = _written([signature, head], _body_pieces(segments, attachments))
    parsed = parse_message(signature + head + b"".join(segments))
    if len(parsed.attachments) != len(attachments):  # never for what we build; the full parse stays right
        return SignedMessage(raw=raw, parsed=parse_message(raw))
    for found, (_, _, content) in zip(parsed.attachments, attachments):
        found.data = content
    return SignedMessage(raw=raw, parsed=parsed)


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


class _RelaxedBodyHash:
    """SHA-256 of a body under DKIM's relaxed body canonicalisation (RFC 6376 3.4.4), fed in pieces.

    dkimpy takes the body whole and makes regex copies of it. Fed pieces that each end at a line end,
    the same regexes (dkimpy's own) work piece by piece; only the empty lines at the very end, which the
    canonical form drops, are held back until more text follows.
    """

    def __init__(self):
        self._sha, self._held_line_ends, self._empty = hashlib.sha256(), 0, True

    def update(self, piece):
        if b" " in piece or b"\t" in piece:  # all the regexes change; base64 has neither, and finding is quicker
            piece = compress_whitespace(strip_trailing_whitespace(piece))
        end = len(piece)
        while piece.endswith(b"\r\n", 0, end):
            end -= 2
        if end == 0:
            self._held_line_ends += len(piece) // 2
            return
        self._sha.update(b"\r\n" * self._held_line_ends)
        self._sha.update(memoryview(piece)[:end])
        self._held_line_ends, self._empty = (len(piece) - end) // 2, False

    def digest(self):
        """The hash, once all pieces are in: the text ends with one CRLF; a body without text is empty."""
        if not self._empty:
            self._sha.update(b"\r\n")
        return self._sha.digest()


def _dkim_signature(*, head, body_hash, domain):
    """The DKIM-Signature line dkim_sign would prepend to `head` and a body with this relaxed hash.

    dkimpy's DKIM.sign with the body hash given: the same tags in the same order (dkimpy 1.1.8), then
    its own header canonicalisation and signing (gen_header). test_send_memory checks the two agree
    byte for byte.
    """
    name, selector = domain.name.encode("ascii"), domain.dkim_selector.encode("ascii")
    signer = dkim.DKIM(head, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
    signer.hasher = hashlib.sha256
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", name), (b"i", b"@" + name),
              (b"q", b"dns/txt"), (b"s", selector), (b"t", str(int(time.time())).encode("ascii")),
              (b"h", b" : ".join(DKIM_SIGNED_HEADERS)), (b"bh", base64.b64encode(body_hash)),
              (b"b", b"0" * 60)]  # dkimpy's placeholder, so b= folds onto a line of its own
    key = parse_pem_private_key(domain.dkim_private_key.encode("ascii"))
    value = signer.gen_header(fields, DKIM_SIGNED_HEADERS, CanonicalizationPolicy.from_c_value(b"relaxed/relaxed"),
                              b"DKIM-Signature", key)
    return b"DKIM-Signature: " + value
