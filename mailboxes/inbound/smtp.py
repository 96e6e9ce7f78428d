"""Inbound SMTP (aiosmtpd): accepts mail for hosted active mailboxes only, up to the size cap.

Replies: 550 for addresses not hosted here (or suspended), 552 above the size cap or when the
account's storage cannot hold the message, 451 on a transient failure, 250 once a copy is stored.

Storage is judged per recipient, at RCPT, against the size the client announced (ESMTP SIZE, which
we advertise and mainstream MTAs send): a full account is refused for its own address only, and the
sender's MTA bounces just that one. DATA has a single reply for every recipient, so a recipient that
only turns out not to fit there (no SIZE given, or the account filled up in between) cannot be
told apart: the copies that fit are kept and the reply is 250 if at least one was stored, 552 if
none. Refusing everyone for one full account would punish the other tenants, and a 451 would make
the sender retry, duplicating the copies already stored.

RCPT's answer for an address is kept for the session (at most RECIPIENT_CACHE_SIZE addresses, each for
RECIPIENT_CACHE_SECONDS): a client sending many messages on one connection has each address looked up once,
and DATA stores into the mailbox RCPT found instead of looking it up again. Nothing is taken on trust: the
storage check at DATA reads, under the account lock, whether the mailbox still exists and is active (a 550
otherwise), and the account's free storage is checked there again, as it always was.

No client can hold up another: database work runs on a pool with a thread for every session (never
one thread shared by all sessions), at most QMAILING_SMTP_MAX_SESSIONS sessions are open at once (421
4.3.2 beyond), and all sessions together hold at most QMAILING_SMTP_MAX_INFLIGHT_BYTES of message,
reserved at MAIL FROM from the announced SIZE (452 4.3.1 while it is used up; a message longer than
it announced is refused 552 5.3.4). Attachment text is extracted later by a worker, never here.
"""

import asyncio
import logging
import re
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from mailboxes.inbound.authentication import authentication_stamp, message_authenticate
from mailboxes.inbound.ingest import delivery_digest
from mailboxes.inbound.hosted import NOT_HOSTED, STORAGE_FULL, SUSPENDED, TOO_COMPLEX, deliver_hosted
from mailboxes.selectors import mailbox_by_address

logger = logging.getLogger(__name__)

TOO_BIG = "552 5.3.4 Message size exceeds the maximum accepted here"
TOO_MANY_SESSIONS = "421 4.3.2 Too many connections, try again later"
BUSY = "452 4.3.1 Too much mail in progress here, try again later"

# A thread for every session the server admits: a slow delivery (a locked account, a huge message)
# holds up its own session only. Threads start when needed and each keeps its own database connection.
_database_threads = ThreadPoolExecutor(max_workers=max(1, settings.QMAILING_SMTP_MAX_SESSIONS),
                                       thread_name_prefix="smtp-db")


def _with_fresh_connection(function):
    """Run a database call the way a request would: drop stale connections before and after."""
    def run(*args, **kwargs):
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()
    return sync_to_async(run, thread_sensitive=False, executor=_database_threads)


# What RCPT found for an address, kept for the rest of the session (a client sending many messages to one
# address on one connection looks it up once): at most this many addresses, each for at most this long.
RECIPIENT_CACHE_SIZE = 100
RECIPIENT_CACHE_SECONDS = 60


@dataclass
class _Recipient:
    """An address as RCPT found it: its mailbox (or None), its refusal if any, and its account's free storage."""
    mailbox: object
    refusal: str | None
    available: int
    found_at: float = field(default_factory=time.monotonic)

    def status(self, size):
        if self.refusal:
            return self.refusal
        return STORAGE_FULL if self.available < max(size, 1) else None


def _recipient_lookup(address):
    """Two queries: the mailbox with its domain, account and plan, then the account's storage in use."""
    mailbox = mailbox_by_address(address=address)
    if mailbox is None:
        return _Recipient(None, NOT_HOSTED, 0)
    if not mailbox.is_active:
        return _Recipient(mailbox, SUSPENDED, 0)
    return _Recipient(mailbox, None, mailbox.account.storage_available())


def _session_recipients(session):
    """The session's RCPT answers, address → _Recipient (see RECIPIENT_CACHE_SIZE)."""
    recipients = getattr(session, "qmailing_recipients", None)
    if recipients is None:
        recipients = session.qmailing_recipients = {}
    return recipients


def _recipients_after_delivery(recipients, outcome):
    """Keep the session's answers true after a delivery: the storage the stored copies took is gone, and an
    address refused at DATA is refused at its next RCPT without a lookup."""
    used = {}
    for email in outcome.emails:
        used[email.account_id] = used.get(email.account_id, 0) + email.size
    for entry in recipients.values():
        if entry.mailbox is not None and entry.mailbox.account_id in used:
            entry.available = max(0, entry.available - used[entry.mailbox.account_id])
    for address, reason in outcome.refused.items():
        entry = recipients.get(address)
        if entry is not None:
            if reason == STORAGE_FULL:
                entry.available = 0
            elif reason in (NOT_HOSTED, SUSPENDED):
                entry.refusal = reason


def announced_size(mail_options):
    """The SIZE= the client gave with MAIL FROM, in bytes (0 when absent or unreadable)."""
    for option in mail_options or ():
        name, _, value = str(option).partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


_recipient_lookup_async = _with_fresh_connection(_recipient_lookup)
_deliver_async = _with_fresh_connection(deliver_hosted)
# DNS only (up to its time budget): on the session's own thread, so a slow lookup holds up no other session.
_authenticate_async = sync_to_async(message_authenticate, thread_sensitive=False, executor=_database_threads)


_UNSAFE_TRACE = re.compile(r"[^A-Za-z0-9.@+_=:\[\]-]")


def _trace_token(value, limit=255):
    """Client-supplied words (HELO name, envelope sender) reduced to characters that cannot break a header."""
    return _UNSAFE_TRACE.sub("", str(value or ""))[:limit]


def trace_headers(*, session, envelope):
    """Return-Path and Received (RFC 5321 §4.4), prepended to what the client sent."""
    peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "unknown")
    helo = _trace_token(session.host_name) or "unknown"
    recipients = envelope.rcpt_tos
    for_clause = f"\r\n\tfor <{_trace_token(recipients[0])}>" if len(recipients) == 1 else ""
    protocol = "ESMTPS" if session.ssl else "ESMTP"  # RFC 3848: the S says the hop was encrypted
    received = (f"Received: from {helo} ([{_trace_token(peer)}])\r\n\tby {settings.QMAILING_MX_HOST} with {protocol} "
                f"id {uuid.uuid4().hex[:16]}{for_clause};\r\n\t{formatdate(usegmt=True)}\r\n")
    return f"Return-Path: <{_trace_token(envelope.mail_from)}>\r\n{received}".encode("ascii")


def announced_or_cap(mail_options, cap):
    """The bytes a transaction reserves: what it announced with a margin (dot-stuffing), else the size cap."""
    size = announced_size(mail_options)
    return min(cap, size + size // 10 + 4096) if size else cap


class _Reservation:
    """Bytes of the in-flight budget held by one transaction, from MAIL FROM until its message is stored."""

    def __init__(self, handler, size):
        self.handler, self.size = handler, size

    def release(self):
        if self.handler is not None:
            self.handler.inflight_bytes -= self.size
            self.handler = None


class InboundHandler:
    """The hooks of every session of one server; its counters are only touched on the event loop's thread."""

    def __init__(self, *, max_message_bytes, max_sessions, max_inflight_bytes):
        self.max_message_bytes = max_message_bytes
        self.max_sessions, self.sessions = max_sessions, 0
        # Never below one largest message, or a client without SIZE could never send.
        self.max_inflight_bytes, self.inflight_bytes = max(max_inflight_bytes, max_message_bytes), 0

    def session_open(self):
        if self.sessions >= self.max_sessions:
            return False
        self.sessions += 1
        return True

    def session_close(self):
        self.sessions -= 1

    def release(self, envelope):
        """Give back what the envelope's transaction reserved (a new transaction began, or the client left)."""
        reservation = getattr(envelope, "reservation", None)
        if reservation is not None:
            reservation.release()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        size = announced_or_cap(mail_options, self.max_message_bytes)
        if self.inflight_bytes + size > self.max_inflight_bytes:
            logger.warning("in-flight budget used up (%d of %d bytes); refusing %d more for now",
                           self.inflight_bytes, self.max_inflight_bytes, size)
            return BUSY
        self.inflight_bytes += size
        envelope.reservation = _Reservation(self, size)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        recipients = _session_recipients(session)
        entry = recipients.get(address)
        if entry is None or time.monotonic() - entry.found_at > RECIPIENT_CACHE_SECONDS:
            try:
                entry = await _recipient_lookup_async(address)
            except Exception:
                logger.exception("recipient lookup failed for %r", address)
                return "451 4.3.0 Temporary failure, please try again later"
            recipients.pop(address, None)
            while len(recipients) >= RECIPIENT_CACHE_SIZE:
                recipients.pop(next(iter(recipients)))  # the oldest answer goes first
            recipients[address] = entry
        refusal = entry.status(announced_size(envelope.mail_options))
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or b""
        if len(raw) > self.max_message_bytes:
            return TOO_BIG
        peer = session.peer[0] if isinstance(session.peer, tuple) else ""
        authentication = await _authenticate_async(raw=raw, client_ip=peer, helo=session.host_name or "",
                                                   mail_from=envelope.mail_from or "")
        content_digest = delivery_digest(raw=raw, envelope_from=envelope.mail_from or "",
                                         authentication=authentication)  # the sender's retry matches it, nobody else's
        raw = (trace_headers(session=session, envelope=envelope)
               + authentication_stamp(raw=raw, authentication=authentication))
        envelope.content = envelope.original_content = None  # one copy of the message in memory, not two
        # The reservation goes with the delivery: a client that leaves now does not free the bytes its
        # message occupies in the delivery thread, which carries on to the end.
        reservation, envelope.reservation = getattr(envelope, "reservation", None), None
        # The mailboxes RCPT found are used again (deliver_hosted reads whether each is still active as it stores).
        recipients = _session_recipients(session)
        known = {address: recipients[address].mailbox for address in envelope.rcpt_tos
                 if address in recipients and recipients[address].refusal is None}
        delivery = asyncio.ensure_future(_deliver_async(raw=raw, recipients=list(envelope.rcpt_tos),
                                                        envelope_from=envelope.mail_from or "", refuse_over_caps=True,
                                                        authentication=authentication, content_digest=content_digest,
                                                        mailboxes=known))
        if reservation is not None:
            delivery.add_done_callback(lambda _: reservation.release())
        try:
            outcome = await asyncio.shield(delivery)
        except Exception:
            logger.exception("delivery failed; asking the sender to retry")
            return "451 4.3.0 Temporary failure, please try again later"
        _recipients_after_delivery(recipients, outcome)
        if outcome.refused:
            logger.warning("accepted at RCPT but not stored: %s", outcome.refused)
        emails = outcome.emails
        if emails:
            return f"250 2.0.0 OK: stored as {emails[0].id}"
        if TOO_COMPLEX in outcome.refused.values():
            return TOO_COMPLEX
        if STORAGE_FULL in outcome.refused.values():
            return STORAGE_FULL
        if SUSPENDED in outcome.refused.values():
            return SUSPENDED  # suspended between RCPT and DATA
        return NOT_HOSTED  # every recipient went away between RCPT and DATA


class _CappedSMTP(SMTP):
    """aiosmtpd 1.4.6's session with the session cap, the in-flight budget, and 5.3.4 on its over-size replies.

    Hooks into its internals (the version is pinned): _handle_client runs once per connection, every
    new transaction (RSET, HELO/EHLO, after DATA) starts in _create_envelope, and smtp_DATA reads
    data_size_limit once, as the message begins.
    """

    def __init__(self, handler, *, line_length_limit, **kwargs):
        # RFC 5321 allows 1,000 bytes a line, but real mail breaks it (HTML on one line, long base64
        # lines, bare-LF messages that are one "line" to SMTP): accept up to a generous limit, as
        # Postfix and Gmail do. Read before super().__init__, which sizes the stream reader with it.
        self.line_length_limit = line_length_limit
        super().__init__(handler, **kwargs)

    async def _handle_client(self):
        if not self.event_handler.session_open():
            try:
                await self.push(TOO_MANY_SESSIONS)
            except ConnectionError:
                pass
            if self.transport is not None:
                self.transport.close()
            return
        try:
            await super()._handle_client()
        finally:
            self.event_handler.session_close()

    def _create_envelope(self):
        self.event_handler.release(self.envelope)
        return super()._create_envelope()

    def connection_lost(self, error):
        self.event_handler.release(self.envelope)
        super().connection_lost(error)

    async def smtp_DATA(self, arg):
        # A message may not be longer than its transaction reserved (its SIZE with a margin, else the cap).
        reservation, cap = getattr(self.envelope, "reservation", None), self.data_size_limit
        if reservation is not None:
            self.data_size_limit = min(cap, reservation.size)
        try:
            await super().smtp_DATA(arg)
        finally:
            self.data_size_limit = cap

    async def push(self, status):
        if status.startswith("552 Error: message size exceeds") or status.startswith("552 Error: Too much mail data"):
            status = TOO_BIG
        elif status.startswith("500 Line too long"):
            status = f"500 5.5.2 Line too long: at most {self.line_length_limit} bytes per line here"
        await super().push(status)


class InboundController(Controller):
    def factory(self):
        return _CappedSMTP(self.handler, line_length_limit=settings.QMAILING_SMTP_MAX_LINE_BYTES, **self.SMTP_kwargs)


def tls_context():
    """STARTTLS for senders that offer it, when a certificate is configured (opportunistic, as MX servers do)."""
    cert, key = settings.QMAILING_SMTP_TLS_CERT_FILE, settings.QMAILING_SMTP_TLS_KEY_FILE
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    return context


def smtp_controller(*, host=None, port=None, max_message_bytes=None):
    """An aiosmtpd controller for inbound mail; call start() / stop() on it."""
    limit = max_message_bytes or settings.QMAILING_SMTP_MAX_MESSAGE_BYTES
    return InboundController(
        InboundHandler(max_message_bytes=limit, max_sessions=settings.QMAILING_SMTP_MAX_SESSIONS,
                       max_inflight_bytes=settings.QMAILING_SMTP_MAX_INFLIGHT_BYTES),
        hostname=host or settings.QMAILING_SMTP_HOST,
        port=port or settings.QMAILING_SMTP_PORT,
        server_hostname=settings.QMAILING_MX_HOST,
        data_size_limit=limit,
        enable_SMTPUTF8=True,
        tls_context=tls_context(),
    )
