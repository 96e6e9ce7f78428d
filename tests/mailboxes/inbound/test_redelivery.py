"""A sender's retry of a delivery it got no answer for is acknowledged and not stored twice; the same bytes sent
by someone else (a co-recipient, anyone on the path) are not its duplicate, so they can never suppress it."""

from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.inbound.ingest import delivery_digest
from mailboxes.models import Email
from tests.mailboxes.counters_check import counters_exact
from tests.mailboxes.inbound_helpers import make_message

GENUINE = {"verdict": "pass", "spf": {"result": "pass"}, "dkim": [{"result": "pass"}], "dmarc": {"result": "pass"}}
FORGED = {"verdict": "fail", "spf": {"result": "fail"}, "dkim": [{"result": "pass"}], "dmarc": {"result": "fail"}}


def _deliver(mailbox, raw, authentication, envelope_from="bounces@example.com"):
    digest = delivery_digest(raw=raw, envelope_from=envelope_from, authentication=authentication)
    return deliver_hosted(raw=raw, recipients=[mailbox.address], envelope_from=envelope_from,
                          authentication=authentication, content_digest=digest).emails[0]


def test_a_senders_retry_is_stored_once(owner):
    mailbox = owner.mailboxes.get()
    raw = make_message(subject="Invoice", to=mailbox.address, message_id="invoice-1@example.com")
    first = _deliver(mailbox, raw, GENUINE)
    again = _deliver(mailbox, raw, GENUINE)
    assert again.pk == first.pk and Email.objects.filter(mailbox=mailbox).count() == 1
    # The retry moved no counter (on PostgreSQL they are applied in the duplicate check's own statement).
    assert counters_exact(mailbox) == (1, 1, len(raw))


def test_the_same_bytes_from_someone_else_do_not_suppress_the_genuine_delivery(owner):
    mailbox = owner.mailboxes.get()
    raw = make_message(subject="Invoice", to=mailbox.address, message_id="invoice-2@example.com")
    forged = _deliver(mailbox, raw, FORGED, envelope_from="attacker@evil.example")
    genuine = _deliver(mailbox, raw, GENUINE)
    assert genuine.pk != forged.pk
    assert sorted(Email.objects.filter(mailbox=mailbox).values_list("authentication__verdict", flat=True)) == \
        ["fail", "pass"]


def test_without_a_message_id_nothing_is_a_duplicate(owner):
    mailbox = owner.mailboxes.get()
    raw = make_message(subject="Disk full", to=mailbox.address)
    _deliver(mailbox, raw, GENUINE)
    _deliver(mailbox, raw, GENUINE)
    assert Email.objects.filter(mailbox=mailbox).count() == 2
