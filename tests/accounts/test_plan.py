"""The plan page, and every "upgrade" message on the dashboard linking to it."""

import pytest
from django.utils.html import escape
from django.urls import reverse

from accounts.models import TOOL_GROUPS
from agent.plans import plan_catalogue
from domains.services import domain_add
from agent.operations import registry


@pytest.fixture
def free_client(client, free_account):
    client.force_login(free_account.users.get())
    return client


def test_plan_page_shows_the_current_plan_what_each_plan_unlocks_and_the_manual_step(free_client, settings, plans):
    settings.QMAILING_PLAN_CONTACT_EMAIL = "sales@qmailing.test"
    page = free_client.get(reverse("plan")).content.decode()
    assert "Your plan: Free" in page and "current" in page
    for plan in plans.values():
        assert plan.name in page
    for operation in registry().values():  # every tool appears, generated from the registry
        assert escape(operation.title) in page
    assert "Webhooks" in page and "Mail, domains and drafts" in page
    assert 'href="mailto:sales@qmailing.test' in page and "manual step" in page and "no online checkout" in page
    assert "checkout" not in page.replace("no online checkout", "")  # and no fake one


def test_plan_catalogue_follows_the_plan_rows(plans):
    rows, groups = plan_catalogue()
    assert [row["plan"].code for row in rows] == ["FREE", "PLUS", "PRO", "PRO_MAX"]
    assert {group["code"] for group in groups} == set(TOOL_GROUPS)
    new = {row["plan"].code: [group["code"] for group in row["new_groups"]] for row in rows}
    assert new == {"FREE": ["mailboxes"], "PLUS": ["mail"], "PRO": ["webhooks"], "PRO_MAX": []}
    webhooks = next(group for group in groups if group["code"] == "webhooks")
    assert webhooks["plans"] == [False, False, True, True]


def test_plan_limit_error_on_a_form_links_to_the_plan_page(free_client, free_account):
    domain_add(account=free_account, name="first.example")  # FREE holds one custom domain
    response = free_client.post(reverse("domains:add"), {"name": "second.example"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Upgrade your plan" in page and f'<a href="{reverse("plan")}">' in page


def test_plan_limit_error_in_a_message_links_to_the_plan_page(rf, free_account):
    from core.errors import LimitReached
    from core.forms import app_error_message

    message = app_error_message(LimitReached("Your plan allows 3 mailboxes. Upgrade your plan or delete a mailbox.", limit="mailboxes"))
    assert f'<a href="{reverse("plan")}">' in message and "Upgrade your plan" in message
    from core.errors import NotFound

    assert app_error_message(NotFound("<b>nope</b>")) == "<b>nope</b>"  # left to autoescaping, no link


def test_nav_links_to_the_plan_page(free_client):
    assert f'href="{reverse("plan")}"' in free_client.get(reverse("dashboard")).content.decode()
