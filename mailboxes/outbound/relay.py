"""Hand prepared (DKIM-signed) bytes to Django's configured email backend.

Raw-capable backends (SMTP relay, file, console, SES) send exactly our bytes, signature intact.
Structured-API ESPs behind django-anymail rebuild the message from the fields filled in here; they sign
with the ESP's DKIM for the domain, so that domain must be set up at the ESP too.
"""

import re
import smtplib
import socket
from email import policy
from email.parser import BytesParser

from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused
from django.core.mail import EmailMultiAlternatives, get_connection

from mailboxes.outbound.composition import MAX_HEADER_BLOCK_BYTES, header_value

# Headers a structured ESP must carry over so threading and loop detection survive.
_CARRIED_HEADERS = ("Message-ID", "In-Reply-To", "References", "Date", "Reply-To", "X-QMailing-Loop")


class _PreparedBytes:
    """Quacks like email.message.Message for the backends: returns our bytes unchanged."""

    def __init__(self, raw):
        self.raw = raw

    def as_bytes(self, unixfrom=False, linesep="\n", **kwargs):
        return self.raw if linesep == "\r\n" else self.raw.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom=False, linesep="\n", **kwargs):
        return self.as_bytes(linesep=linesep).decode("utf-8", "replace")

    def __bytes__(self):
        return self.raw

    def __str__(self):
        return self.as_string()

    def get_charset(self):
        return None


class HeadersTooLarge(ValueError):
    """The message's header block is over MAX_HEADER_BLOCK_BYTES: refused for good, never retried."""


def _header_block_size(raw):
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return len(raw) if end < 0 else end


def _listed(header, recipients):
    """The recipients whose address stands in this header's text: one linear scan per recipient.

    The header registry's address-list parse is quadratic (10,000 addresses took seconds per copy),
    and only membership is needed here: which envelope recipients a structured ESP shows in To / Cc.
    """
    text = str(header or "").lower()
    return [r for r in recipients if re.search(r"(?<![\w.+-])" + re.escape(r.lower()) + r"(?![\w-])", text)]


class PreparedEmailMessage(EmailMultiAlternatives):
    def __init__(self, *, raw, envelope_from, recipients, header_from=None):
        if _header_block_size(raw) > MAX_HEADER_BLOCK_BYTES:
            raise HeadersTooLarge(f"The message headers exceed {MAX_HEADER_BLOCK_BYTES} bytes; it is not sent on.")
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        raw_headers = {name.lower(): value for name, value in parsed.raw_items() if name.lower() in ("to", "cc")}
        to = _listed(raw_headers.get("to"), recipients)
        cc = [r for r in _listed(raw_headers.get("cc"), recipients) if r not in to]
        shown = {a.lower() for a in to + cc}
        hidden = [r for r in recipients if r.lower() not in shown]
        if not to and not cc:
            to, hidden = hidden, []
        headers = {}
        for name in _CARRIED_HEADERS:
            if parsed.get(name) is not None:
                headers[name] = header_value(str(parsed.get(name)))
        super().__init__(subject=header_value(str(parsed.get("subject", ""))), body=self._text(parsed),
                         from_email=header_from or envelope_from, to=to, cc=cc, bcc=hidden, headers=headers)
        self.envelope_from = envelope_from
        self._raw = raw
        self._fill_parts(parsed)

    @staticmethod
    def _text(parsed):
        try:
            part = parsed.get_body(preferencelist=("plain",))
            return part.get_content() if part is not None else ""
        except Exception:
            return ""

    def _fill_parts(self, parsed):
        try:
            html = parsed.get_body(preferencelist=("html",))
            if html is not None:
                self.attach_alternative(html.get_content(), "text/html")
            for part in parsed.iter_attachments():
                self.attach(part.get_filename() or "attachment", part.get_payload(decode=True) or b"",
                            part.get_content_type())
        except Exception:
            pass

    def message(self, *args, **kwargs):
        return _PreparedBytes(self._raw)


BACKEND_TOOK_NOTHING = "The mail backend accepted no message."


def relay_send(*, raw, envelope_from, recipients, header_from=None):
    """Send through the configured backend; returns the ESP's message id ("" when it has none)."""
    message = PreparedEmailMessage(raw=raw, envelope_from=envelope_from, recipients=recipients, header_from=header_from)
    connection = get_connection(fail_silently=False)
    sent = connection.send_messages([message])
    if not sent:
        raise RuntimeError(BACKEND_TOOK_NOTHING)
    status = getattr(message, "anymail_status", None)
    return (getattr(status, "message_id", None) or "") if status is not None else ""


def permanent_failure(exc):
    """Whether a send error is a refusal that retrying cannot fix (bad recipient, rejected sender).

    SMTP 4xx replies (greylisting, a full queue, "try again later") are temporary even when they
    refuse every recipient, so only 5xx counts as permanent.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return exc.smtp_code >= 500
    return isinstance(exc, (AnymailRecipientsRefused, AnymailInvalidAddress, HeadersTooLarge))


# Errors that prove the relay did not take the message: it answered with a refusal code, or no connection was
# ever made. Anything else (a timeout or a dropped connection after DATA, a lost HTTP answer) may have come
# after the relay took it.
_NOT_TAKEN = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPConnectError,
              smtplib.SMTPNotSupportedError, ConnectionRefusedError, socket.gaierror, HeadersTooLarge,
              AnymailRecipientsRefused, AnymailInvalidAddress)


def relay_refused(exc):
    """Whether a relay_send error proves the message was not handed off, so sending again cannot duplicate it.

    Otherwise the hand-off is uncertain (mailboxes.work): it stays marked and is never re-sent blindly.
    """
    if isinstance(exc, _NOT_TAKEN):
        return True
    if isinstance(exc, RuntimeError) and str(exc) == BACKEND_TOOK_NOTHING:
        return True
    return getattr(exc, "status_code", None) is not None  # an ESP API that answered with an error status
