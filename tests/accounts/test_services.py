import re

import pytest
from django.core.management import CommandError, call_command

from accounts.models import TOOL_GROUPS, Plan, User
from accounts.selectors import plan_lowest_with_group
from accounts.services import account_set_plan, account_signup
from core.errors import Conflict, Invalid
from events.models import Event


def test_plans_are_seeded_with_groups_and_limits(plans):
    assert [p.code for p in Plan.objects.order_by("rank")] == ["FREE", "PLUS", "PRO", "PRO_MAX"]
    assert plans["FREE"].tool_groups == ["mailboxes"] and plans["FREE"].daily_request_cap == 25
    assert plans["PLUS"].allows_group("mail") and not plans["PLUS"].allows_group("webhooks")
    assert plans["PRO"].allows_group("webhooks") and plans["PRO_MAX"].allows_group("webhooks")
    for plan in plans.values():
        assert set(plan.tool_groups) <= set(TOOL_GROUPS)
        assert plan.max_domains >= 1 and plan.max_mailboxes >= 1 and plan.storage_bytes > 0 and plan.sends_per_day > 0
        if plan.code != "FREE":
            assert plan.daily_request_cap is None
    ranks = [plans[c] for c in ("FREE", "PLUS", "PRO", "PRO_MAX")]
    assert all(a.max_mailboxes <= b.max_mailboxes and a.max_domains <= b.max_domains for a, b in zip(ranks, ranks[1:]))
    assert plan_lowest_with_group(group="mail").code == "PLUS"
    assert plan_lowest_with_group(group="webhooks").code == "PRO"


def test_sign_up_creates_a_free_account_with_a_shared_domain_mailbox(db):
    user = account_signup(email="Jane.Doe@Example.COM", password="a long enough passphrase", full_name="Jane Doe")
    assert user.email == "jane.doe@example.com" and user.check_password("a long enough passphrase")
    account = user.account
    assert account.plan.code == "FREE" and account.name == "Jane Doe"
    (mailbox,) = account.mailboxes.all()
    assert mailbox.address == "jane.doe@qmailing.localhost" and mailbox.domain.is_shared and mailbox.display_name == "Jane Doe"
    assert Event.objects.filter(account=account, type="mailbox.created").count() == 1


def test_shared_mailbox_names_never_collide_or_take_role_names(db):
    first = account_signup(email="sam@one.example", password="a long enough passphrase")
    second = account_signup(email="sam@two.example", password="a long enough passphrase")
    admin = account_signup(email="admin@three.example", password="a long enough passphrase")
    weird = account_signup(email="ex+tra@four.example", password="a long enough passphrase")
    long_one = account_signup(email="a" * 47 + ".bcd@five.example", password="a long enough passphrase")
    assert long_one.account.mailboxes.get().local_part == "a" * 47
    assert first.account.mailboxes.get().local_part == "sam"
    assert second.account.mailboxes.get().local_part == "sam2"
    assert admin.account.mailboxes.get().local_part == "admin-user"
    assert weird.account.mailboxes.get().local_part == "extra"


def test_sign_up_refuses_duplicates_and_bad_input(db):
    account_signup(email="dup@example.com", password="a long enough passphrase")
    with pytest.raises(Conflict):
        account_signup(email="DUP@example.com", password="a long enough passphrase")
    with pytest.raises(Invalid) as err:
        account_signup(email="not-an-email", password="a long enough passphrase")
    assert "email" in err.value.errors
    with pytest.raises(Invalid) as err:
        account_signup(email="weak@example.com", password="password")
    assert "password" in err.value.errors
    assert not User.objects.filter(email="weak@example.com").exists()


def test_set_plan_command(owner, capsys):
    call_command("set_plan", "owner@example.org", "pro")
    owner.refresh_from_db()
    assert owner.plan.code == "PRO"
    assert "now on PRO" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no plan"):
        call_command("set_plan", "owner@example.org", "GOLD")
    with pytest.raises(CommandError, match="No account"):
        call_command("set_plan", "ghost@example.org", "PRO")


def test_set_plan_service_rejects_unknown_plans(owner):
    with pytest.raises(Invalid):
        account_set_plan(account=owner, plan_code="ENTERPRISE")


def _printed_demo_password(out):
    return re.search(r"demo@example\.com / (\S+) ", out)[1]


def test_demo_command_is_idempotent_and_prints_a_random_password_once(db, capsys):
    call_command("create_demo")
    first = capsys.readouterr().out
    password = _printed_demo_password(first)
    assert password != "demo-password-2026" and len(password) >= 16
    call_command("create_demo")
    again = capsys.readouterr().out
    assert password not in again and "--new-password" in again
    user = User.objects.get(email="demo@example.com")
    assert user.account.plan.code == "PLUS" and user.is_staff and user.is_superuser and user.account.mailboxes.count() == 1
    assert user.check_password(password)
    call_command("create_demo", "--new-password")
    renewed = _printed_demo_password(capsys.readouterr().out)
    user.refresh_from_db()
    assert renewed != password and user.check_password(renewed) and not user.check_password(password)


def test_demo_command_replaces_the_password_earlier_versions_published(db, capsys):
    call_command("create_demo")
    user = User.objects.get(email="demo@example.com")
    user.set_password("demo-password-2026")
    user.save()
    capsys.readouterr()
    call_command("create_demo")
    password = _printed_demo_password(capsys.readouterr().out)
    user.refresh_from_db()
    assert not user.check_password("demo-password-2026") and user.check_password(password)


def test_limit_helpers_reflect_usage(free_account):
    assert free_account.mailboxes_available() == free_account.plan.max_mailboxes - 1
    assert free_account.domains_available() == free_account.plan.max_domains
    assert free_account.storage_available() == free_account.plan.storage_bytes
