"""Raw RFC 5322 bytes → the fields QMailing stores. Pure (no database); never raises on hostile input.

Address fields are lists of {"address": "user@example.com", "name": "Display Name"} (name may be "").
Every string that comes out is one that PostgreSQL and JSON accept (no NUL, no lone surrogates);
header values have no control characters, so they can never inject headers later (CVE-2024-6923).
"""

import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.policy import EmailPolicy
from functools import lru_cache
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from mailboxes.inbound.bodies import MAX_HTML_DEPTH, html_sanitize, html_too_deep, snippet_from, text_without_quotes
from mailboxes.inbound.html_text import html_to_text_with_links
from core.datetimes import as_utc

MAX_PARTS = 100
MAX_DEPTH = 10
MAX_ADDRESSES = 500
MAX_REFERENCES = 100
MAX_BODY_CHARS = 2_000_000
MAX_PARSED_HEADER = 32_000
# Earlier years are typos or forgeries (two-digit years are read as 1969–2068).
MIN_DATE_YEAR, MAX_DATE_YEAR = 1900, 9998

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Bidi overrides, embeddings and isolates, zero-width and other invisible formatting characters: in a
# filename they make "invoice\u202egpj.exe" look like "invoiceexe.jpg".
_INVISIBLE_FORMATTING = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+")
# RFC 5322 2.1.1: at most 998 characters a line. Longer lines are kept as they came and recorded.
MAX_LINE_LENGTH = 998
# Anchored at line starts, so the scan is linear: unanchored, every position would rescan its line.
_LONG_LINE = re.compile(rb"^[^\r\n]{%d}" % (MAX_LINE_LENGTH + 1), re.MULTILINE)
# multipart/* and message/* Content-Type headers (folded or not): each is a container the parser recurses into.
_CONTAINER_HEADER = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|wg|vs|antw|tr|r|rif|odp)(\s*[\[(]\d+[\])])?\s*:\s*)+", re.IGNORECASE)


class _MemoisingPolicy(EmailPolicy):
    """policy.default, but each distinct header value is parsed once.

    The modern policy re-parses a header on every access, and the parser itself reads Content-Type
    several times per part; parsed headers are immutable, so sharing them changes no result.
    """

    def header_fetch_parse(self, name, value):
        if hasattr(value, "name") or len(value) > _MEMO_MAX_VALUE:
            return super().header_fetch_parse(name, value)
        return _header_parsed(name, value)


_MEMO_MAX_VALUE = 2000
MODERN_POLICY = _MemoisingPolicy()


@lru_cache(maxsize=8192)
def _header_parsed(name, value):
    return EmailPolicy.header_fetch_parse(policy.default, name, value)


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content_id: str
    is_inline: bool
    data: bytes
    text: str = ""  # the decoded body of a text/* attachment


@dataclass
class ParsedMessage:
    from_: list = field(default_factory=list)
    to: list = field(default_factory=list)
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    reply_to: list = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: list = field(default_factory=list)
    text: str = ""
    text_clean: str = ""
    html: str = ""
    snippet: str = ""
    links: dict = field(default_factory=dict)  # number (str) → URL, cited in `text` as "[n]"
    attachments: list = field(default_factory=list)
    defects: list = field(default_factory=list)

    @property
    def over_structure_caps(self):
        """More than MAX_PARTS parts or nesting deeper than MAX_DEPTH (the rest was not read)."""
        return any(defect.startswith(("TooManyParts", "TooDeeplyNested")) for defect in self.defects)


def clean_text(value):
    """A str PostgreSQL can store: no NUL, lone surrogates (from undecodable bytes) replaced."""
    value = str(value or "").replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def header_line(value):
    """One header value on one line: every CR, LF and other control character becomes a space."""
    return re.sub(r"\s{2,}", " ", _CONTROL.sub(" ", clean_text(value))).strip()


def without_invisible_formatting(text):
    """The text without bidi controls, zero-width or other invisible formatting characters."""
    return _INVISIBLE_FORMATTING.sub("", text)


def safe_filename(value):
    """A filename fit to show and to offer for download: one line, no bidi or invisible formatting."""
    return without_invisible_formatting(header_line(value))[:255]


def normalize_subject(subject):
    """The thread subject: no Re:/Fwd:/AW:/SV: prefixes, case kept."""
    return _SUBJECT_PREFIX.sub("", subject or "").strip()


def normalize_newlines(text):
    """One line ending, LF, whatever the message used on the wire (SMTP CRLF, old Mac CR, mixed)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_bytes(data, charset, defects):
    """Body bytes decoded in the declared charset (unknown or broken ones fall back to UTF-8 then
    Latin-1), with LF line endings: every text derived from a body is the same however it arrived."""
    return normalize_newlines(_decoded(data, charset, defects))


def _decoded(data, charset, defects):
    charset = (charset or "").strip().strip('"').lower() or "us-ascii"
    try:
        codecs.lookup(charset)
        return clean_text(data.decode(charset, errors="replace"))
    except (LookupError, TypeError, ValueError):
        defects.append(f"UnknownCharset: {header_line(charset)[:80]}")
    except Exception as exc:  # a codec can fail in surprising ways on hostile bytes
        defects.append(f"CharsetDecodeError: {header_line(charset)[:80]}: {type(exc).__name__}")
    try:
        return clean_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        return clean_text(data.decode("latin-1"))


def _raw_header(message, name):
    """The header's unparsed value(s), decoded word by word without policy objects."""
    values = [value for key, value in message.raw_items() if key.lower() == name]
    out = []
    for value in values:
        try:
            out.append(str(make_header(decode_header(str(value)))))
        except Exception:
            out.append(str(value))
    return out


def _too_long(message, name, defects):
    # The modern header parser is slow on huge values; a header this long is abuse, read it the cheap way.
    if sum(len(value) for key, value in message.raw_items() if key.lower() == name) > MAX_PARSED_HEADER:
        defects.append(f"HeaderTooLong: {name}")
        return True
    return False


def _header(message, name, defects):
    """The header as a string; falls back to the raw value when the modern policy chokes on it."""
    if _too_long(message, name, defects):
        return " ".join(_raw_header(message, name))[:MAX_PARSED_HEADER]
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception as exc:
        defects.append(f"HeaderParseError: {name}: {type(exc).__name__}")
        return " ".join(_raw_header(message, name.lower()))


def _addresses(message, name, defects):
    result = []
    try:
        if _too_long(message, name, defects):
            raise ValueError(name)
        header = message.get(name)
        if header is None:
            return []
        pairs = [(address.display_name, address.addr_spec) for address in header.addresses]
    except Exception as exc:
        defects.append(f"AddressParseError: {name}: {type(exc).__name__}")
        pairs = [(display, address) for display, address in getaddresses(_raw_header(message, name.lower()))]
    for display, address in pairs[:MAX_ADDRESSES]:
        address, display = header_line(address)[:320], header_line(display)[:320]
        if address or display:
            result.append({"address": address, "name": display})
    return result


def _message_ids(value):
    ids = _MESSAGE_ID.findall(value or "")
    if not ids:
        ids = [token.strip("<>") for token in (value or "").split() if token.strip("<>")]
    return [header_line(i)[:998] for i in ids if header_line(i)]


def _date(message, defects):
    """The Date header in UTC, or None (with a defect) when it is absent, unparsable or out of range."""
    try:
        header = message.get("date")
        value = header.datetime if header is not None else None
        if value is None and header is not None and str(header).strip():
            defects.append("InvalidDateDefect: the Date header is not a date")
    except Exception:
        try:
            raw = _raw_header(message, "date")
            value = parsedate_to_datetime(raw[0]) if raw else None
        except Exception:
            defects.append("InvalidDateDefect: the Date header is not a date")
            value = None
    if value is None:
        return None
    try:
        return as_utc(value, min_year=MIN_DATE_YEAR, max_year=MAX_DATE_YEAR)
    except (ValueError, OverflowError, TypeError) as exc:
        # Stored as it came, the value would fail the INSERT and the message would never be kept.
        defects.append(f"InvalidDateDefect: {exc}")
        return None


def _walk(message, defects):
    """Yield the message's leaf parts depth-first, stopping at MAX_PARTS parts or MAX_DEPTH nesting."""
    stack, seen, reported = [(message, 0)], 0, set()
    while stack:
        part, depth = stack.pop()
        defects.extend(type(defect).__name__ for defect in getattr(part, "defects", ()))
        seen += 1
        if seen > MAX_PARTS:
            defects.append(f"TooManyParts: more than {MAX_PARTS} MIME parts; the rest was not read")
            return
        if depth > MAX_DEPTH:
            if "depth" not in reported:
                reported.add("depth")
                defects.append(f"TooDeeplyNested: MIME nesting deeper than {MAX_DEPTH}; the rest was not read")
            continue
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            stack.extend((child, depth + 1) for child in reversed(children if isinstance(children, list) else []))
        else:
            yield part


def _filename(part):
    try:
        return safe_filename(part.get_filename() or "")
    except Exception:
        return ""


def _is_attachment(part, content_type, filename):
    try:
        disposition = (part.get_content_disposition() or "").lower()
    except Exception:
        disposition = ""
    if disposition == "attachment" or content_type == "message/rfc822":
        return True
    return bool(filename) or content_type not in ("text/plain", "text/html")


def _payload(part, defects):
    try:
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            return inner.as_bytes(policy=policy.compat32) if hasattr(inner, "as_bytes") else b""
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception as exc:
        defects.append(f"PayloadDecodeError: {type(exc).__name__}")
        return b""


def containers_over_cap(raw):
    """Whether the raw message declares more than MAX_PARTS multipart/message containers.

    Counted with one linear scan of the bytes, before any parsing: the standard library parses nested
    parts recursively, so a message nested thousands deep fails inside the parser (RecursionError)
    before the MAX_DEPTH check of _walk could see it. Every container is a part, so more than
    MAX_PARTS of them is over the parts cap whatever their shape.
    """
    count = 0
    for _ in _CONTAINER_HEADER.finditer(raw):
        count += 1
        if count > MAX_PARTS:
            return True
    return False


def parse_message(raw):
    """Parse raw bytes into a ParsedMessage. Defects are recorded, never raised."""
    parsed = ParsedMessage()
    defects = parsed.defects
    if _LONG_LINE.search(raw):
        defects.append(f"LineTooLong: a line is longer than {MAX_LINE_LENGTH} characters (RFC 5322 2.1.1); kept as it came")
    over_cap = containers_over_cap(raw)
    if over_cap:
        defects.append(f"TooManyParts: more than {MAX_PARTS} nested MIME containers; the body was not read")
    try:
        # Over the cap only the header block is read: its fields are still worth storing.
        message = BytesParser(policy=MODERN_POLICY).parsebytes(raw, headersonly=over_cap)
    except Exception as exc:  # the feed parser is meant never to raise; this is the last guard
        defects.append(f"ParseError: {type(exc).__name__}")
        return parsed
    try:
        _fill_headers(parsed, message, defects)
        if not over_cap:
            _fill_body(parsed, message, defects)
    except Exception as exc:
        defects.append(f"ParseError: {type(exc).__name__}")
    parsed.defects = [header_line(d)[:300] for d in dict.fromkeys(defects)][:200]
    return parsed


def _fill_headers(parsed, message, defects):
    parsed.from_ = _addresses(message, "from", defects)
    parsed.to = _addresses(message, "to", defects)
    parsed.cc = _addresses(message, "cc", defects)
    parsed.bcc = _addresses(message, "bcc", defects)
    parsed.reply_to = _addresses(message, "reply-to", defects)
    parsed.subject = header_line(_header(message, "subject", defects))
    parsed.date = _date(message, defects)
    ids = _message_ids(_header(message, "message-id", defects))
    parsed.message_id = ids[0] if ids else ""
    ids = _message_ids(_header(message, "in-reply-to", defects))
    parsed.in_reply_to = ids[0] if ids else ""
    parsed.references = _message_ids(_header(message, "references", defects))[-MAX_REFERENCES:]


def _fill_body(parsed, message, defects):
    texts, html = [], ""
    for part in _walk(message, defects):
        try:
            content_type = part.get_content_type()
        except Exception:
            content_type = "application/octet-stream"
        content_type = header_line(content_type)[:255] or "application/octet-stream"
        if content_type.startswith("multipart/"):  # a multipart without a usable boundary: read it as text
            content_type = "text/plain"
        filename = _filename(part)
        data = _payload(part, defects)
        charset = _charset(part)
        if _is_attachment(part, content_type, filename):
            text = decode_bytes(data, charset, defects) if content_type.startswith("text/") else ""
            content_id = _message_ids(_header(part, "content-id", defects))
            parsed.attachments.append(ParsedAttachment(
                filename=filename, content_type=content_type, content_id=content_id[0][:255] if content_id else "",
                is_inline=_disposition(part) == "inline" or (bool(content_id) and _disposition(part) != "attachment"),
                data=data, text=text))
        elif content_type == "text/html":
            if not html:
                html = decode_bytes(data, charset, defects)[:MAX_BODY_CHARS]
        else:
            texts.append(decode_bytes(data, charset, defects)[:MAX_BODY_CHARS])

    parsed.text = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    if html and html_too_deep(html):
        # Kept as text only: sanitising it would take seconds, and no real message nests this deep.
        defects.append(f"HtmlTooDeeplyNested: more than {MAX_HTML_DEPTH} nested elements; HTML not kept")
    elif html:
        parsed.html = html_sanitize(html)
    if html and not parsed.text:
        # From the HTML as it came: sanitising drops the styles that hide preheaders and pixels.
        parsed.text, parsed.links = html_to_text_with_links(html)
    parsed.text_clean = text_without_quotes(parsed.text)
    parsed.snippet = snippet_from(parsed.text_clean or parsed.text, links=parsed.links)


def _charset(part):
    try:
        return part.get_content_charset() or ""
    except Exception:
        return ""


def _disposition(part):
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""
