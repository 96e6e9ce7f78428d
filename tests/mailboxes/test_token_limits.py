"""Tokens limited to chosen mailboxes: what a limited token's lists, searches and waits show, a limit whose
mailboxes are all gone, and where a limit is set (token_issue, `issue_token --mailboxes`)."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Plan
from accounts.services import account_set_plan
from accounts.tokens import token_issue, token_lookup, token_mailbox_addresses, personal_token_list
from agent.operations import registry
from core.errors import Invalid
from mailboxes.inbound.ingest import email_ingest
from mailboxes.services import mailbox_delete
from mailboxes.store.drafts import draft_create
from tests.api_helpers import call, token_for
from tests.api_helpers import problem_of as _problem
from tests.mailboxes.inbound_helpers import make_message
from tests.qmailing.test_permission_matrix import other_mailbox


@pytest.fixture
def two_mailboxes(owner):
    """The owner's first mailbox and a second one, each with an email and a draft."""
    account_set_plan(account=owner, plan_code=Plan.PRO_MAX)
    first, second = owner.mailboxes.get(), other_mailbox(owner)
    for mailbox, word in ((first, "alpha"), (second, "bravo")):
        email_ingest(mailbox=mailbox, raw=make_message(subject=f"Invoice {word}"))
        draft_create(account=owner, mailbox=mailbox, to=["someone@example.org"], text=f"Draft {word}")
    return first, second


def _run(client, name, token, **args):
    response = call(client, registry()[name], token=token, args=args)
    assert response.status_code == 200, response.content
    return response.json()


def test_lists_searches_and_waits_show_only_the_chosen_mailboxes(client, owner, two_mailboxes):
    first, second = two_mailboxes
    token = token_for(owner, mailbox_ids=[second.pk])
    assert [item["id"] for item in _run(client, "qmailing_list_mailboxes", token)["items"]] == [str(second.pk)]
    found = _run(client, "qmailing_search_emails", token, query="invoice")["items"]
    assert [item["subject"] for item in found] == ["Invoice bravo"]
    drafts = _run(client, "qmailing_list_drafts", token)["items"]
    assert [item["mailbox_id"] for item in drafts] == [str(second.pk)]
    events = _run(client, "qmailing_wait_for_events", token, cursor=0, timeout_seconds=0)["events"]
    assert events and {event["mailbox_id"] for event in events} == {str(second.pk)}
    # The unlimited token sees both, and the account's own events (of no mailbox) too.
    unlimited = token_for(owner)
    assert len(_run(client, "qmailing_search_emails", unlimited, query="invoice")["items"]) == 2
    every = {event["mailbox_id"] for event in _run(client, "qmailing_wait_for_events", unlimited, cursor=0,
                                                   timeout_seconds=0)["events"]}
    assert {str(first.pk), str(second.pk)} <= every


def test_a_limit_whose_mailboxes_were_all_deleted_reaches_nothing(client, owner, two_mailboxes):
    first, second = two_mailboxes
    token = token_for(owner, mailbox_ids=[second.pk])
    mailbox_delete(mailbox=second)
    assert token_mailbox_addresses(token_lookup(token)) == []
    assert _run(client, "qmailing_list_mailboxes", token)["items"] == []
    assert _run(client, "qmailing_search_emails", token, query="invoice")["items"] == []
    assert _run(client, "qmailing_list_drafts", token)["items"] == []
    assert _run(client, "qmailing_wait_for_events", token, cursor=0, timeout_seconds=0)["events"] == []
    _problem(call(client, registry()["qmailing_get_mailbox"], token=token, args={"mailbox_id": first.pk}),
             404, "not_found")


def test_token_issue_refuses_another_accounts_mailbox_and_issues_nothing(owner, outsider):
    user = owner.users.get()
    with pytest.raises(Invalid) as refused:
        token_issue(account=owner, user=user, client="Bot", scopes="mailbox:read",
                    mailbox_ids=[owner.mailboxes.get().pk, outsider.mailboxes.get().pk])
    assert refused.value.errors == {"mailboxes": ["Some of the chosen mailboxes are not in your account."]}
    with pytest.raises(Invalid):
        token_issue(account=owner, user=user, client="Bot", scopes="mailbox:read", mailbox_ids=[])
    assert not personal_token_list(account=owner).exists()


def test_issue_token_limits_to_the_mailboxes_named(owner):
    second = other_mailbox(owner)
    first = owner.mailboxes.exclude(pk=second.pk).get()
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", "owner@example.org", "--client", "Bot", "--scopes", "mailbox:read",
                 "--mailboxes", f" {second.address.upper()} ", stdout=out, stderr=err)
    access_token = token_lookup(out.getvalue().strip())
    assert token_mailbox_addresses(access_token) == [second.address]
    assert f"mailboxes: {second.address}" in err.getvalue()
    call_command("issue_token", "owner@example.org", "--client", "Bot", "--scopes", "mailbox:read",
                 "--mailboxes", f"{first.address},{second.address}", stdout=out, stderr=err)
    access_token = token_lookup(out.getvalue().split()[-1])
    assert token_mailbox_addresses(access_token) == sorted([first.address, second.address])
    call_command("issue_token", "owner@example.org", "--client", "Bot", "--scopes", "mailbox:read",
                 stdout=out, stderr=err)
    assert token_mailbox_addresses(token_lookup(out.getvalue().split()[-1])) is None


@pytest.mark.parametrize("addresses", ["nobody@qmailing.localhost", "outsider@qmailing.localhost", ","])
def test_issue_token_refuses_an_address_that_is_not_the_accounts(owner, outsider, addresses):
    before = personal_token_list(account=owner).count()
    with pytest.raises(CommandError) as refused:
        call_command("issue_token", "owner@example.org", "--client", "Bot", "--scopes", "mailbox:read",
                     "--mailboxes", addresses, stdout=io.StringIO(), stderr=io.StringIO())
    assert "mailbox" in str(refused.value)
    assert personal_token_list(account=owner).count() == before


def test_the_docs_name_exactly_the_account_wide_operations():
    from pathlib import Path

    from django.conf import settings

    text = Path(settings.BASE_DIR, "docs/agents/tokens-and-oauth.md").read_text()
    section = text.split("## Tokens limited to chosen mailboxes")[1].split("\n## ")[0]
    named = set(re.findall(r"`([a-z_]+)`", section.split("account-wide")[1].split("The limit is")[0]))
    account_wide = {name.removeprefix("qmailing_") for name, op in registry().items() if op.account_wide}
    assert account_wide == named & {name.removeprefix("qmailing_") for name in registry()}
    assert account_wide >= {"list_domains", "add_domain", "create_mailbox", "register_webhook", "list_webhooks"}
