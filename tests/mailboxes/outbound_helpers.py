"""Fixtures for the outbound, store and search tests (import the fixtures by name)."""

import socket
import threading

import dkim
import dns.resolver
import pytest
from aiosmtpd.controller import Controller

from mailboxes.inbound.ingest import email_ingest
from mailboxes.services import mailbox_create
from tests.mailboxes.inbound_helpers import make_message


@pytest.fixture
def eager_tasks():
    """Celery tasks run in-process, so a send's hand-off happens within the test."""
    from qmailing.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def sender(owner, verified_domain):
    """alice@brand.example: the owner's mailbox on a verified custom domain with a DKIM key."""
    return mailbox_create(account=owner, domain=verified_domain, local_part="alice", display_name="Alice Brand")


@pytest.fixture
def recipient_mailbox(outsider):
    """A mailbox hosted here that belongs to someone else (the outsider's signup mailbox)."""
    return outsider.mailboxes.get()


def dkim_dns(dns_server):
    """A dkimpy dnsfunc that asks the loopback DNS server, where the domain's key is published."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port

    def lookup(name, timeout=5):
        answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        return b"".join(b"".join(rdata.strings) for rdata in answer)

    return lookup


def dkim_valid(raw, dns_server):
    return dkim.verify(raw, dnsfunc=dkim_dns(dns_server))


class _Collector:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        # Addresses to refuse with a temporary 451 once (greylisting), then accept.
        self.refuse_once = set()
        self.refused = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            if address in self.refuse_once:
                self.refuse_once.discard(address)
                self.refused.append(address)
                return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_relay(settings):
    """A real SMTP server on loopback, configured as Django's relay."""
    handler = _Collector()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield handler
    controller.stop()


def receive(mailbox, **kwargs):
    """Store an inbound message in the mailbox through the real ingest path."""
    kwargs.setdefault("to", mailbox.address)
    return email_ingest(mailbox=mailbox, raw=make_message(**kwargs))


def confirmed_forwarding(mailbox):
    """The mailbox, with every forwarding address it asked to confirm confirmed (the flow itself is
    tested in test_forwarding_security)."""
    from django.utils import timezone

    from mailboxes.models import ForwardingConfirmation

    ForwardingConfirmation.objects.filter(account_id=mailbox.account_id, confirmed_at__isnull=True).update(
        confirmed_at=timezone.now())
    return mailbox
