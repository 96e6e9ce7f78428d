"""An account holds at most QMAILING_MAX_TOKENS_PER_ACCOUNT live personal tokens: each has its own throttle, so
unlimited tokens would be an unlimited request rate. Through the service and through the Developers wizard."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from oauth2_provider.models import AccessToken

from accounts.tokens import TOKEN_LIMIT_REACHED, token_issue, token_revoke
from core.errors import Conflict
from tests.accounts.test_developers import INDEX, TOKEN_RE, _issue
from tests.accounts.test_oauth_apps import _authorise

CAP = 3


@pytest.fixture(autouse=True)
def low_cap(settings):
    settings.QMAILING_MAX_TOKENS_PER_ACCOUNT = CAP


def issue(account, client="Cursor"):
    return token_issue(account=account, user=account.users.get(), client=client, scopes="mailbox:read")


def test_issue_up_to_the_cap_then_refused_and_revoking_one_frees_a_slot(owner):
    issued = [issue(owner, client=f"Bot {n}")[1] for n in range(CAP)]
    with pytest.raises(Conflict) as refused:
        issue(owner)
    assert refused.value.code == TOKEN_LIMIT_REACHED == "token_limit_reached" and refused.value.status == 409
    assert f"{CAP} personal tokens" in refused.value.detail and "Revoke one" in refused.value.detail
    assert AccessToken.objects.filter(user__account=owner).count() == CAP

    token_revoke(account=owner, token_id=issued[0].pk)
    issue(owner)
    with pytest.raises(Conflict):
        issue(owner)


def test_expired_tokens_do_not_count(owner):
    _, first = issue(owner)
    for _ in range(CAP - 1):
        issue(owner)
    AccessToken.objects.filter(pk=first.pk).update(expires=timezone.now() - timedelta(seconds=1))
    issue(owner)


def test_each_account_has_its_own_cap(owner, outsider):
    for _ in range(CAP):
        issue(owner)
    issue(outsider)


def test_oauth_issued_tokens_do_not_count(client, owner):
    # Each OAuth token needs a person's consent on the authorization page: bounded by that, not by this cap.
    for n in range(CAP):
        _authorise(client, owner.users.get(), name=f"App {n}")
    for _ in range(CAP):
        issue(owner)
    with pytest.raises(Conflict):
        issue(owner)


def test_issue_token_command_says_why(owner):
    for _ in range(CAP):
        issue(owner)
    with pytest.raises(CommandError, match="Revoke one"):
        call_command("issue_token", owner.users.get().email, client="Cursor", scopes="mailbox:read")


def test_wizard_at_the_cap_shows_the_refusal_beside_the_token_list(client, owner):
    client.force_login(owner.users.get())
    for _ in range(CAP):
        issue(owner)
    response = _issue(client, "cursor")
    assert response.status_code == 302 and response.url == INDEX + "#tokens"
    page = client.get(response.url).content.decode()
    assert f"An account may hold {CAP} personal tokens at a time." in page and "Revoke one you no longer use" in page
    assert 'id="tokens"' in page and TOKEN_RE.search(page) is None
    assert AccessToken.objects.filter(user__account=owner).count() == CAP

    token_revoke(account=owner, token_id=AccessToken.objects.filter(user__account=owner).first().pk)
    issued = _issue(client, "cursor")
    assert issued.status_code == 200 and TOKEN_RE.search(issued.content.decode())


def test_the_refusal_code_is_documented(client, db):
    assert f'id="{TOKEN_LIMIT_REACHED}"' in client.get("/docs/errors").content.decode()
