import pytest

from domains.services import domain_add, shared_domain_get
from mailboxes.models import Mailbox
from mailboxes.selectors import access_group, access_mailbox, mailbox_by_address, mailbox_list
from mailboxes.services import (
    group_create, group_set_members, mailbox_create, mailbox_set_status, mailbox_update,
)
from core.errors import Conflict, Invalid, LimitReached, NotFound
from events.models import Event


def test_mailbox_on_a_verified_domain(owner, verified_domain):
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="Sales", display_name="Sales team",
                             forwarding_addresses=["Me@Gmail.COM"], forward_keep_copy=False)
    assert mailbox.address == "sales@brand.example"
    assert mailbox.forwarding_addresses == ["Me@gmail.com"] and mailbox.forward_keep_copy is False
    assert (mailbox.message_count, mailbox.unread_count, mailbox.storage_used) == (0, 0, 0)
    event = Event.objects.get(account=owner, type="mailbox.created", mailbox=mailbox)
    assert event.payload == {"mailbox_id": str(mailbox.id), "address": "sales@brand.example"}


def test_unverified_domain_refuses_mailboxes(owner):
    domain = domain_add(account=owner, name="pending.example")
    with pytest.raises(Invalid) as err:
        mailbox_create(account=owner, domain=domain, local_part="hello")
    assert err.value.code == "domain_not_verified"


def test_foreign_domain_is_not_found(outsider, verified_domain):
    with pytest.raises(NotFound):
        mailbox_create(account=outsider, domain=verified_domain, local_part="hijack")


@pytest.mark.parametrize("raw, reason", [
    ("", "Enter the part"),
    ("   ", "Enter the part"),
    ("a@b", "only the part before"),
    ("..", "dot"),
    (".dot", "dot"),
    ("dot.", "dot"),
    ("a..b", "dot"),
    ("x" * 65, "64"),
    ("josé", "ASCII"),
    ("用户", "ASCII"),
    ("with space", "no spaces"),
    ('"quoted"', "no spaces or quotes"),
    ("a+b", "sub-addressing"),
    ("a(b)", "only"),
])
def test_bad_local_parts_get_a_clear_error(owner, verified_domain, raw, reason):
    with pytest.raises(Invalid) as err:
        mailbox_create(account=owner, domain=verified_domain, local_part=raw)
    assert reason.lower() in err.value.detail.lower()
    assert "local_part" in err.value.errors


def test_uppercase_is_folded_and_odd_but_legal_characters_are_kept(owner, verified_domain):
    assert mailbox_create(account=owner, domain=verified_domain, local_part="First.Last").local_part == "first.last"
    assert mailbox_create(account=owner, domain=verified_domain, local_part="o'neil_{x}=y").local_part == "o'neil_{x}=y"
    assert mailbox_create(account=owner, domain=verified_domain, local_part="x" * 64).local_part == "x" * 64


def test_addresses_are_unique_per_domain_case_insensitively(owner, verified_domain):
    mailbox_create(account=owner, domain=verified_domain, local_part="team")
    with pytest.raises(Conflict) as err:
        mailbox_create(account=owner, domain=verified_domain, local_part="TEAM")
    assert err.value.code == "mailbox_exists"


def test_reserved_names(owner, verified_domain):
    shared = shared_domain_get()
    for name in ("postmaster", "abuse", "admin", "noreply"):
        with pytest.raises(Invalid) as err:
            mailbox_create(account=owner, domain=shared, local_part=name)
        assert err.value.code == "address_reserved"
    with pytest.raises(Invalid):
        mailbox_create(account=owner, domain=verified_domain, local_part="MAILER-DAEMON")
    # On their own domain an owner should receive postmaster@ and abuse@ (RFC 2142).
    assert mailbox_create(account=owner, domain=verified_domain, local_part="postmaster").address == "postmaster@brand.example"


def test_mailbox_limit_of_the_plan_is_enforced(free_account):
    shared = shared_domain_get()
    assert free_account.mailboxes.count() == 1  # the sign-up mailbox
    assert free_account.mailboxes_available() == 2
    mailbox_create(account=free_account, domain=shared, local_part="free-two")
    mailbox_create(account=free_account, domain=shared, local_part="free-three")
    with pytest.raises(LimitReached) as err:
        mailbox_create(account=free_account, domain=shared, local_part="free-four")
    assert err.value.extra["limit"] == "mailboxes" and "3 mailbox" in err.value.detail
    assert free_account.mailboxes.count() == 3


def test_forwarding_is_validated(owner, verified_domain):
    with pytest.raises(Invalid) as err:
        mailbox_create(account=owner, domain=verified_domain, local_part="fw", forwarding_addresses=["not-an-address"])
    assert "forwarding_addresses" in err.value.errors
    with pytest.raises(Invalid):
        mailbox_create(account=owner, domain=verified_domain, local_part="loop", forwarding_addresses=["LOOP@brand.example"])
    with pytest.raises(Invalid):
        mailbox_create(account=owner, domain=verified_domain, local_part="many",
                       forwarding_addresses=[f"x{i}@example.com" for i in range(11)])
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="fw",
                             forwarding_addresses=["a@example.com", "A@EXAMPLE.com"])
    assert mailbox.forwarding_addresses == ["a@example.com"]
    mailbox_update(mailbox=mailbox, forwarding_addresses=[], forward_keep_copy=True, display_name="Forwarder")
    mailbox.refresh_from_db()
    assert mailbox.forwarding_addresses == [] and mailbox.display_name == "Forwarder"


def test_display_name_cannot_smuggle_header_lines(owner, verified_domain):
    with pytest.raises(Invalid):
        mailbox_create(account=owner, domain=verified_domain, local_part="x", display_name="Evil\r\nBcc: a@b.c")


def test_suspend_and_reactivate(owner, verified_domain):
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="s")
    mailbox_set_status(mailbox=mailbox, status="suspended")
    assert Mailbox.objects.get(pk=mailbox.pk).status == "suspended"
    with pytest.raises(Invalid):
        mailbox_set_status(mailbox=mailbox, status="deleted")


def test_groups_and_memberships(owner, outsider, verified_domain):
    sales = mailbox_create(account=owner, domain=verified_domain, local_part="sales")
    support = mailbox_create(account=owner, domain=verified_domain, local_part="support")
    group = group_create(account=owner, name="Brand", members=[sales, support])
    assert set(group.members.all()) == {sales, support}
    assert list(sales.groups.all()) == [group]
    with pytest.raises(Conflict):
        group_create(account=owner, name="brand")
    foreign = outsider.mailboxes.first()
    with pytest.raises(NotFound):
        group_set_members(group=group, members=[sales, foreign])
    assert set(group.members.all()) == {sales, support}
    with pytest.raises(NotFound):
        access_group(account=outsider, group_id=group.id)


def test_outsider_gets_not_found_for_the_owners_mailbox(owner, outsider, verified_domain):
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="private")
    with pytest.raises(NotFound):
        access_mailbox(account=outsider, mailbox_id=mailbox.id)
    with pytest.raises(NotFound):
        access_mailbox(account=owner, mailbox_id="12345")
    assert mailbox not in mailbox_list(account=outsider)
    assert access_mailbox(account=owner, mailbox_id=str(mailbox.id)) == mailbox


def test_sub_addresses_resolve_to_the_mailbox(owner, verified_domain):
    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="news")
    assert mailbox_by_address(address="News+Weekly@Brand.Example") == mailbox
    assert mailbox_by_address(address="nobody@brand.example") is None
    assert mailbox_by_address(address="garbage") is None


def test_groups_can_be_renamed_but_not_onto_another_name(owner, verified_domain):
    from mailboxes.services import group_update

    sales = mailbox_create(account=owner, domain=verified_domain, local_part="sales")
    group = group_create(account=owner, name="Brand")
    group_create(account=owner, name="Other")
    group_update(group=group, name="Brand EU", description="Europe", members=[sales])
    group.refresh_from_db()
    assert (group.name, group.description, list(group.members.all())) == ("Brand EU", "Europe", [sales])
    with pytest.raises(Conflict):
        group_update(group=group, name="other", members=[])
    with pytest.raises(Invalid):
        group_update(group=group, name="  ", members=[])


def test_deleting_a_mailbox_removes_its_mail_and_files_and_frees_the_address(owner, verified_domain):
    from django.core.files.storage import default_storage

    from mailboxes.store.services import email_trash
    from mailboxes.services import mailbox_delete
    from tests.mailboxes.outbound_helpers import receive

    mailbox = mailbox_create(account=owner, domain=verified_domain, local_part="gone")
    first = receive(mailbox, subject="one", attachments=[("a.txt", "text/plain", b"attached words")])
    email_trash(email=receive(mailbox, subject="two"))
    files = [first.raw.name, first.attachments.get().file.name]
    assert all(default_storage.exists(name) for name in files)
    with django_on_commit():
        mailbox_delete(mailbox=mailbox)
    assert not Mailbox.objects.filter(pk=mailbox.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert Event.objects.filter(account=owner, type="mailbox.deleted", payload__address="gone@brand.example").exists()
    assert mailbox_create(account=owner, domain=verified_domain, local_part="gone").address == "gone@brand.example"


def django_on_commit():
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)
