"""Fixtures shared by the mail tests, registered for the whole folder."""

import pytest

from tests.dnsserver import DnsServer
from tests.mailboxes.inbound_helpers import inbound_smtp, other_mailbox  # noqa: F401
from tests.mailboxes.outbound_helpers import eager_tasks, recipient_mailbox, sender, smtp_relay  # noqa: F401


@pytest.fixture(scope="session")
def _empty_dns_server():
    server = DnsServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _inbound_dns_stays_local(settings, _empty_dns_server):
    """Mail over SMTP or the webhook is checked in DNS (SPF, DKIM, DMARC): against a local server that
    knows no names, never the network. Tests that publish records use `dns_server`, which overrides this."""
    settings.QMAILING_DNS_RESOLVERS = [f"127.0.0.1:{_empty_dns_server.port}"]
    settings.QMAILING_DNS_TIMEOUT = 1.0
