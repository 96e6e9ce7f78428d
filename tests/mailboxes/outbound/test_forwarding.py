import pytest

from mailboxes.outbound import forwarding
from tests.mailboxes.counters_check import counters_exact
from mailboxes.outbound.forwarding import LOOP_HEADER, loop_marker
from mailboxes.inbound.hosted import deliver_hosted
from mailboxes.models import Email, ForwardDelivery, Mailbox
from mailboxes.services import mailbox_create, mailbox_update
from tests.mailboxes.inbound_helpers import make_message
from tests.mailboxes.outbound_helpers import confirmed_forwarding, dkim_valid


def test_forward_to_external_address_goes_through_the_relay_marked_and_signed(
        owner, verified_domain, dns_server, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="hello",
                         forwarding_addresses=["me@personal.example", "backup@other.example"]))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_hosted(raw=make_message(subject="Forward me", to=box.address, text="body text"), recipients=[box.address])
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
    b = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="b", forwarding_addresses=[a.address]))
    confirmed_forwarding(mailbox_update(mailbox=a, forwarding_addresses=[b.address]))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_hosted(raw=make_message(subject="Ping", to=a.address), recipients=[a.address])
    # a → b → a, and there it stops: a sees its own marker.
    assert Email.objects.filter(mailbox=a).count() == 2
    assert Email.objects.filter(mailbox=b).count() == 1
    counters_exact(a), counters_exact(b)


def test_without_keep_copy_the_stored_email_is_removed_after_hand_off(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="relay",
                         forwarding_addresses=["me@personal.example"], forward_keep_copy=False))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_hosted(raw=make_message(subject="Pass through", to=box.address), recipients=[box.address])
    assert len(smtp_relay.messages) == 1
    assert not Email.objects.filter(mailbox=box).exists()
    assert counters_exact(box) == (0, 0, 0)


def test_sent_mail_is_never_forwarded(owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    from mailboxes.outbound.send import email_send

    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="fw", forwarding_addresses=["me@personal.example"]))
    with django_capture_on_commit_callbacks(execute=True):
        email_send(account=owner, mailbox=box, to=["client@else.example"], text="hi")
    assert [m.rcpt_tos for m in smtp_relay.messages] == [["client@else.example"]]


FORWARD_TO = ["first@personal.example", "flaky@other.example", "third@else.example"]


def _received_by(smtp_relay):
    return sorted(m.rcpt_tos[0] for m in smtp_relay.messages)


def test_retry_after_a_refused_address_sends_only_to_addresses_not_done(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="fan", forwarding_addresses=FORWARD_TO))
    smtp_relay.refuse_once.add("flaky@other.example")
    with django_capture_on_commit_callbacks(execute=True):
        email = deliver_hosted(raw=make_message(subject="Once each", to=box.address), recipients=[box.address]).emails[0]
    assert smtp_relay.refused == ["flaky@other.example"]
    assert _received_by(smtp_relay) == sorted(FORWARD_TO)  # each address exactly once, retry included
    records = {r.recipient: r for r in ForwardDelivery.objects.filter(email=email)}
    assert {r.status for r in records.values()} == {"sent"}
    assert records["flaky@other.example"].attempts == 2 and records["first@personal.example"].attempts == 1
    assert "451" in records["flaky@other.example"].error


def test_a_rerun_after_the_worker_died_mid_task_sends_the_rest_only_and_never_twice(
        owner, verified_domain, smtp_relay, monkeypatch, settings):
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.tasks import work_sweep

    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="crash",
                         forwarding_addresses=FORWARD_TO, forward_keep_copy=False))
    email = deliver_hosted(raw=make_message(subject="Crash", to=box.address), recipients=[box.address]).emails[0]
    real_send, handed, killed = forwarding.relay_send, [], []

    def dies_during_the_second_hand_off(**kwargs):
        if handed:
            killed.append(kwargs["recipients"][0])
            raise SystemExit("worker killed")  # not an Exception: nothing in the task catches it
        handed.append(kwargs["recipients"][0])
        return real_send(**kwargs)

    monkeypatch.setattr(forwarding, "relay_send", dies_during_the_second_hand_off)
    with pytest.raises(SystemExit):
        forwarding.email_forward(email_id=email.id)
    assert _received_by(smtp_relay) == handed
    monkeypatch.setattr(forwarding, "relay_send", real_send)
    forwarding.email_forward(email_id=email.id)  # the broker redelivers the unacknowledged task
    # The address whose hand-off was interrupted may or may not have it: it is not sent again blindly.
    assert _received_by(smtp_relay) == sorted(set(FORWARD_TO) - set(killed))
    later = timezone.now() + timedelta(seconds=settings.QMAILING_HANDOFF_STUCK_SECONDS + 1)
    assert work_sweep(now=later)["uncertain"] == 1
    record = ForwardDelivery.objects.get(email=email, recipient=killed[0])
    assert record.status == ForwardDelivery.Status.UNCERTAIN and "may or may not" in record.error
    forwarding.email_forward(email_id=email.id)
    assert _received_by(smtp_relay) == sorted(set(FORWARD_TO) - set(killed))  # still never twice
    assert Email.objects.filter(pk=email.pk).exists()  # not every address surely has it: the copy stays


def test_permanent_refusal_fails_that_address_only_and_keeps_the_copy(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks, monkeypatch):
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="strict",
                         forwarding_addresses=["gone@personal.example", "ok@other.example"], forward_keep_copy=False))

    async def refuse_gone(server, session, envelope, address, rcpt_options):
        if address == "gone@personal.example":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    monkeypatch.setattr(smtp_relay, "handle_RCPT", refuse_gone)
    with django_capture_on_commit_callbacks(execute=True):
        email = deliver_hosted(raw=make_message(subject="Strict", to=box.address), recipients=[box.address]).emails[0]
    assert _received_by(smtp_relay) == ["ok@other.example"]
    statuses = dict(ForwardDelivery.objects.filter(email=email).values_list("recipient", "status"))
    assert statuses == {"gone@personal.example": "failed", "ok@other.example": "sent"}
    assert Email.objects.filter(pk=email.pk).exists()  # an address never got it, so the copy stays


def test_hosted_forward_targets_get_one_copy_across_retries(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    team = mailbox_create(account=owner, domain=verified_domain, local_part="team")
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="mixed",
                         forwarding_addresses=[team.address, "flaky@other.example"]))
    smtp_relay.refuse_once.add("flaky@other.example")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_hosted(raw=make_message(subject="Mixed", to=box.address), recipients=[box.address])
    assert Email.objects.filter(mailbox=team).count() == 1
    assert _received_by(smtp_relay) == ["flaky@other.example"]
    counters_exact(team)


def test_forward_to_a_suspended_hosted_mailbox_fails_that_address_and_keeps_the_copy(
        owner, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    from mailboxes.services import mailbox_set_status

    paused = mailbox_create(account=owner, domain=verified_domain, local_part="paused")
    mailbox_set_status(mailbox=paused, status="suspended")
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="only",
                         forwarding_addresses=[paused.address], forward_keep_copy=False))
    with django_capture_on_commit_callbacks(execute=True):
        email = deliver_hosted(raw=make_message(subject="Important", to=box.address), recipients=[box.address]).emails[0]
    record = ForwardDelivery.objects.get(email=email)
    assert (record.status, record.is_hosted) == ("failed", True)
    assert paused.address in record.error and "5.2.1" in record.error
    assert not Email.objects.filter(mailbox=paused).exists()
    assert Email.objects.filter(pk=email.pk).exists()  # nobody got it, so the only copy stays
    counters_exact(box)


def test_a_full_hosted_forward_target_does_not_hold_back_the_external_ones(
        owner, outsider, verified_domain, smtp_relay, eager_tasks, django_capture_on_commit_callbacks):
    full = outsider.mailboxes.get()
    Mailbox.objects.filter(pk=full.pk).update(storage_used=outsider.plan.storage_bytes)
    box = confirmed_forwarding(mailbox_create(account=owner, domain=verified_domain, local_part="both",
                         forwarding_addresses=[full.address, "me@personal.example"]))
    with django_capture_on_commit_callbacks(execute=True):
        email = deliver_hosted(raw=make_message(subject="Both", to=box.address), recipients=[box.address]).emails[0]
    assert _received_by(smtp_relay) == ["me@personal.example"]
    records = {r.recipient: r for r in ForwardDelivery.objects.filter(email=email)}
    assert records["me@personal.example"].status == "sent" and records["me@personal.example"].attempts == 1
    assert records[full.address].status == "failed" and records[full.address].attempts == 1  # no retries
    assert "552 5.2.2" in records[full.address].error and outsider.plan.name not in records[full.address].error
