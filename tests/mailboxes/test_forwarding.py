from mailboxes.counters import mailbox_counters_recompute
from mailboxes.forwarding import LOOP_HEADER, loop_marker
from mailboxes.ingest import deliver_inbound
from mailboxes.models import Email
from mailboxes.services import mailbox_create, mailbox_update
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import dkim_valid, eager_tasks, smtp_relay  # noqa: F401 (fixtures)


def _exact(mailbox):
    mailbox.refresh_from_db()
    stored = (mailbox.message_count, mailbox.unread_count, mailbox.storage_used)
    mailbox_counters_recompute(mailbox=mailbox)
    assert stored == (mailbox.message_count, mailbox.unread_count, mailbox.storage_used)
    return stored


def test_forward_to_external_address_goes_through_the_relay_marked_and_signed(
        owner, verified_domain, dns_server, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    box = mailbox_create(account=owner, domain=verified_domain, local_part="hello",
                         forwarding_addresses=["me@personal.example", "backup@other.example"])
    with django_capture_on_commit_callbacks(execute=True):
        deliver_inbound(raw=make_message(subject="Forward me", to=box.address, text="body text"), recipients=[box.address])
    assert sorted(m.rcpt_tos[0] for m in smtp_relay.messages) == ["backup@other.example", "me@personal.example"]
    for envelope in smtp_relay.messages:
        assert len(envelope.rcpt_tos) == 1  # forwarding targets never see each other
        assert envelope.mail_from == box.address
        relayed = envelope.original_content
        assert relayed.startswith(b"DKIM-Signature:") and dkim_valid(relayed, dns_server)
        assert f"{LOOP_HEADER.decode()}: {loop_marker(box)}".encode() in relayed
        assert b"body text" in relayed
    assert Email.objects.filter(mailbox=box).count() == 1  # keep copy by default


def test_forwarding_loop_between_two_hosted_mailboxes_stops(owner, verified_domain, eager_tasks,
                                                           django_capture_on_commit_callbacks):
    a = mailbox_create(account=owner, domain=verified_domain, local_part="a")
    b = mailbox_create(account=owner, domain=verified_domain, local_part="b", forwarding_addresses=[a.address])
    mailbox_update(mailbox=a, forwarding_addresses=[b.address])
    with django_capture_on_commit_callbacks(execute=True):
        deliver_inbound(raw=make_message(subject="Ping", to=a.address), recipients=[a.address])
    # a → b → a, and there it stops: a sees its own marker.
    assert Email.objects.filter(mailbox=a).count() == 2
    assert Email.objects.filter(mailbox=b).count() == 1
    _exact(a), _exact(b)


def test_without_keep_copy_the_stored_email_is_removed_after_hand_off(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    box = mailbox_create(account=owner, domain=verified_domain, local_part="relay",
                         forwarding_addresses=["me@personal.example"], forward_keep_copy=False)
    with django_capture_on_commit_callbacks(execute=True):
        deliver_inbound(raw=make_message(subject="Pass through", to=box.address), recipients=[box.address])
    assert len(smtp_relay.messages) == 1
    assert not Email.objects.filter(mailbox=box).exists()
    assert _exact(box) == (0, 0, 0)


def test_sent_mail_is_never_forwarded(owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    from mailboxes.outbound import email_send

    box = mailbox_create(account=owner, domain=verified_domain, local_part="fw", forwarding_addresses=["me@personal.example"])
    with django_capture_on_commit_callbacks(execute=True):
        email_send(account=owner, mailbox=box, to=["client@else.example"], text="hi")
    assert [m.rcpt_tos for m in smtp_relay.messages] == [["client@else.example"]]
