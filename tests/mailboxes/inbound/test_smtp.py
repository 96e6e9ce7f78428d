"""The real aiosmtpd server on a loopback port, spoken to with smtplib."""

import smtplib
import socket

import pytest

from domains.services import shared_domain_get
from mailboxes.models import Email, Mailbox
from mailboxes.services import mailbox_create, mailbox_set_status
from mailboxes.inbound.smtp import smtp_controller
from tests.mailboxes.inbound_helpers import make_message

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread must see committed rows; seeded plans restored

SMALL_CAP = 64 * 1024


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    settings.QMAILING_SMTP_MAX_MESSAGE_BYTES = SMALL_CAP
    controller = smtp_controller(host="127.0.0.1", port=_free_port())
    controller.start()
    yield controller
    controller.stop()


def wire(raw):
    """smtplib sends bytes as they are; SMTP needs CRLF line ends."""
    return raw.replace(b"\n", b"\r\n")


def _client(server):
    return smtplib.SMTP(server.hostname, server.port, timeout=10)


def test_mail_to_a_hosted_mailbox_is_accepted_and_stored_over_the_wire(smtp_server, mailbox):
    raw = wire(make_message(subject="Over the wire", to=mailbox.address))
    with _client(smtp_server) as client:
        refused = client.sendmail("alice@example.com", [mailbox.address], raw)
    assert refused == {}
    email = Email.objects.get(mailbox=mailbox)
    assert email.subject == "Over the wire"
    with email.raw.open("rb") as handle:
        stored = handle.read()
    trace, _, body = stored.partition(b"\r\n\tfor <" + mailbox.address.encode() + b">;")
    assert trace.startswith(b"Return-Path: <alice@example.com>\r\nReceived: from ")
    assert b"by mx.qmailing.localhost with ESMTP id " in trace
    ours = body.split(b"\r\n", 2)[2]  # our Authentication-Results, then the client's bytes untouched
    assert ours.startswith(b"Authentication-Results: mx.qmailing.localhost;\r\n\tspf=") and ours.endswith(raw)


def test_trace_headers_never_carry_client_line_breaks(smtp_server, mailbox):
    with _client(smtp_server) as client:
        client.ehlo("evil.example\tBcc: x@y.z")
        client.sendmail("bad\tname@example.com", [mailbox.address], wire(make_message(to=mailbox.address)))
    with Email.objects.get(mailbox=mailbox).raw.open("rb") as handle:
        head = handle.read().split(b"\r\n\r\n")[0]
    assert not any(line.lstrip().startswith(b"Bcc") for line in head.split(b"\r\n"))
    assert b"Received: from evil.exampleBcc:x@y.z " in head


def test_one_transaction_to_two_accounts_stores_one_copy_each(smtp_server, mailbox, other_mailbox):
    local, domain = mailbox.address.split("@")
    with _client(smtp_server) as client:
        client.sendmail("alice@example.com", [mailbox.address, f"{local}+tag@{domain}", other_mailbox.address],
                        wire(make_message()))
    assert Email.objects.filter(mailbox=mailbox).count() == 1
    assert Email.objects.filter(mailbox=other_mailbox).count() == 1


def test_unknown_recipient_gets_550_5_1_1(smtp_server, mailbox):
    with _client(smtp_server) as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, message = client.rcpt("nobody@nowhere.example")
    assert code == 550 and message.startswith(b"5.1.1")


def test_suspended_mailbox_gets_550(smtp_server, owner):
    paused = mailbox_create(account=owner, domain=shared_domain_get(), local_part="paused")
    mailbox_set_status(mailbox=paused, status="suspended")
    with _client(smtp_server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        client.sendmail("alice@example.com", [paused.address], wire(make_message()))
    assert caught.value.recipients[paused.address][0] == 550
    assert not Email.objects.filter(mailbox=paused).exists()


def test_message_above_the_size_cap_gets_552_5_3_4(smtp_server, mailbox):
    raw = wire(make_message(text=("z" * 76 + "\n") * (SMALL_CAP // 77 + 50)))
    with _client(smtp_server) as client:
        # Announced size (ESMTP SIZE) is refused at MAIL FROM...
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.sendmail("alice@example.com", [mailbox.address], raw)
        assert caught.value.smtp_code == 552 and caught.value.smtp_error.startswith(b"5.3.4")
    with _client(smtp_server) as client:
        # ...and an unannounced one at the end of DATA.
        client.helo()
        client.mail("alice@example.com")
        client.rcpt(mailbox.address)
        code, message = client.data(raw)
    assert code == 552 and message.startswith(b"5.3.4")
    assert not Email.objects.filter(mailbox=mailbox).exists()


def _fill(mailbox, *, leave=0):
    """Use up the mailbox's account storage but `leave` bytes (the counter the storage check sums)."""
    Mailbox.objects.filter(pk=mailbox.pk).update(storage_used=mailbox.account.plan.storage_bytes - leave)


def test_full_storage_gets_552_5_2_2_at_rcpt_when_the_size_is_announced(smtp_server, mailbox):
    _fill(mailbox, leave=500)
    raw = wire(make_message(text=("y" * 70 + "\n") * 45))
    with _client(smtp_server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        client.sendmail("alice@example.com", [mailbox.address], raw)  # smtplib sends SIZE= as we advertise it
    code, message = caught.value.recipients[mailbox.address]
    assert code == 552 and message.startswith(b"5.2.2")
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_full_storage_without_announced_size_gets_552_at_data(smtp_server, mailbox):
    _fill(mailbox, leave=500)
    with _client(smtp_server) as client:
        client.helo()
        client.mail("alice@example.com")
        assert client.rcpt(mailbox.address)[0] == 250
        code, message = client.data(wire(make_message(text=("y" * 70 + "\n") * 45)))
    assert code == 552 and message.startswith(b"5.2.2")
    assert not Email.objects.filter(mailbox=mailbox).exists()


def test_one_full_account_is_refused_alone_and_the_other_tenant_gets_the_message(smtp_server, mailbox, other_mailbox):
    _fill(mailbox)
    with _client(smtp_server) as client:
        refused = client.sendmail("alice@example.com", [mailbox.address, other_mailbox.address], wire(make_message()))
    assert refused[mailbox.address][0] == 552 and refused[mailbox.address][1].startswith(b"5.2.2")
    assert b"plan" not in refused[mailbox.address][1].lower()  # nothing about the other account's plan
    assert not Email.objects.filter(mailbox=mailbox).exists()
    assert Email.objects.filter(mailbox=other_mailbox).count() == 1


def test_a_recipient_that_only_fails_at_data_does_not_cost_the_others_their_copy(smtp_server, mailbox, other_mailbox):
    _fill(mailbox, leave=500)
    with _client(smtp_server) as client:
        client.helo()
        client.mail("alice@example.com")  # no SIZE: the RCPT check cannot know the message is too big
        assert client.rcpt(mailbox.address)[0] == 250 and client.rcpt(other_mailbox.address)[0] == 250
        code, _ = client.data(wire(make_message(text=("y" * 70 + "\n") * 45)))
    assert code == 250
    assert not Email.objects.filter(mailbox=mailbox).exists()
    assert Email.objects.filter(mailbox=other_mailbox).count() == 1


def _transaction(client, recipient, raw):
    client.mail("alice@example.com")
    rcpt = client.rcpt(recipient)[0]
    return rcpt, client.data(raw)


def test_a_mailbox_suspended_after_rcpt_is_refused_at_data_and_nothing_is_stored(smtp_server, owner):
    box = mailbox_create(account=owner, domain=shared_domain_get(), local_part="soon-paused")
    with _client(smtp_server) as client:
        client.helo()
        client.mail("alice@example.com")
        assert client.rcpt(box.address)[0] == 250
        mailbox_set_status(mailbox=box, status="suspended")  # between RCPT and DATA
        code, message = client.data(wire(make_message(to=box.address)))
    assert code == 550 and message.startswith(b"5.2.1")
    assert not Email.objects.filter(mailbox=box).exists()


def test_a_session_keeps_rcpt_answers_but_data_still_checks_the_mailbox_and_the_storage(smtp_server, owner):
    """The second and third messages of a session reuse RCPT's answer (250 without a lookup); what changed since
    is still refused at DATA: a suspended mailbox (550 5.2.1), then an account whose storage filled (552 5.2.2)."""
    box = mailbox_create(account=owner, domain=shared_domain_get(), local_part="session")
    with _client(smtp_server) as client:
        client.helo()
        assert _transaction(client, box.address, wire(make_message(to=box.address, subject="first")))[1][0] == 250
        mailbox_set_status(mailbox=box, status="suspended")
        rcpt, (code, message) = _transaction(client, box.address, wire(make_message(to=box.address, subject="second")))
        assert rcpt == 250 and code == 550 and message.startswith(b"5.2.1")
        # The refusal at DATA is remembered: the next RCPT of the session refuses at once.
        client.mail("alice@example.com")
        assert client.rcpt(box.address)[0] == 550
        client.rset()
        mailbox_set_status(mailbox=box, status="active")
    with _client(smtp_server) as client:  # a new session looks the address up again
        client.helo()
        assert _transaction(client, box.address, wire(make_message(to=box.address, subject="third")))[1][0] == 250
        _fill(box, leave=500)
        rcpt, (code, message) = _transaction(client, box.address,
                                             wire(make_message(to=box.address, text=("y" * 70 + "\n") * 45)))
        assert rcpt == 250 and code == 552 and message.startswith(b"5.2.2")
    assert sorted(Email.objects.filter(mailbox=box).values_list("subject", flat=True)) == ["first", "third"]


def test_forwarding_set_during_a_session_applies_to_its_next_message(smtp_server, owner):
    """The session's cached mailbox does not decide forwarding: the row read as the message is stored does."""
    box = mailbox_create(account=owner, domain=shared_domain_get(), local_part="forwards")
    with _client(smtp_server) as client:
        client.helo()
        assert _transaction(client, box.address, wire(make_message(to=box.address, subject="before")))[1][0] == 250
        Mailbox.objects.filter(pk=box.pk).update(forwarding_addresses=["elsewhere@example.net"])
        assert _transaction(client, box.address, wire(make_message(to=box.address, subject="after")))[1][0] == 250
    due = dict(Email.objects.filter(mailbox=box).values_list("subject", "followup_due_at"))
    assert due["before"] is None and due["after"] is not None  # the second is recorded to be forwarded


def test_a_mailbox_deleted_after_rcpt_is_refused_at_data(smtp_server, owner):
    box = mailbox_create(account=owner, domain=shared_domain_get(), local_part="going")
    with _client(smtp_server) as client:
        client.helo()
        client.mail("alice@example.com")
        assert client.rcpt(box.address)[0] == 250
        Mailbox.objects.filter(pk=box.pk).delete()
        code, message = client.data(wire(make_message(to=box.address)))
    assert code == 550 and message.startswith(b"5.1.1")
    assert not Email.objects.filter(mailbox_id=box.pk).exists()


@pytest.mark.parametrize("builder", ["parts", "depth"])
def test_mime_structure_beyond_the_caps_gets_554_5_6_0_and_nothing_is_stored(smtp_server, mailbox, builder):
    from mailboxes.inbound.parsing import MAX_DEPTH, MAX_PARTS
    from tests.mailboxes.inbound_helpers import many_parts_message, nested_message

    raw = many_parts_message(MAX_PARTS + 1) if builder == "parts" else nested_message(MAX_DEPTH + 1)
    with _client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("alice@example.com", [mailbox.address], raw)
    assert err.value.smtp_code == 554 and b"5.6.0" in err.value.smtp_error
    assert not Email.objects.filter(mailbox=mailbox).exists()
    within = many_parts_message(MAX_PARTS - 1) if builder == "parts" else nested_message(MAX_DEPTH)
    with _client(smtp_server) as client:
        assert client.sendmail("alice@example.com", [mailbox.address], within) == {}


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.qmailing.localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_starttls_is_offered_with_a_certificate_and_the_hop_is_recorded_as_esmtps(settings, tmp_path, mailbox):
    import ssl

    settings.QMAILING_SMTP_TLS_CERT_FILE, settings.QMAILING_SMTP_TLS_KEY_FILE = _self_signed(tmp_path)
    controller = smtp_controller(host="127.0.0.1", port=_free_port())
    controller.start()
    try:
        with _client(controller) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed in the test
            client.starttls(context=context)
            client.ehlo()
            assert client.sendmail("alice@example.com", [mailbox.address], wire(make_message(to=mailbox.address))) == {}
    finally:
        controller.stop()
    with Email.objects.get(mailbox=mailbox).raw.open("rb") as handle:
        assert b"with ESMTPS id " in handle.read(600)


def test_without_a_certificate_no_starttls_is_offered(smtp_server):
    with _client(smtp_server) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
