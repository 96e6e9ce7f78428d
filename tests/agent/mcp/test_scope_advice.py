"""What a 403 insufficient_scope advises, over REST and MCP: it depends on the token, and on what a refused send left.

An OAuth-issued token is told to reconnect its app and grant the scope (a link to the app's row in Settings →
Developers); a personal token is told to issue one there. A send refused for email:send says what became of
the message: a draft stays in Drafts for a person; a new message was not saved, so the agent is pointed at
qmailing_create_draft.
"""

import httpx2
import pytest
import requests
from django.conf import settings
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mailboxes.models import Draft
from tests.accounts.test_oauth_apps import _authorise
from tests.agent.mcp.conftest import run
from tests.api_helpers import token_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

DEVELOPERS = "/settings/developers/"


def _tool(url, token, name, arguments):
    async def scenario():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client:
                return await client.call_tool(name, arguments)

    result = run(scenario())
    assert result.is_error is True
    return result.content[0].text  # the message an agent reads (the problem's detail leads it)


def _rest(base, token, method, path, body=None):
    response = requests.request(method, f"{base}/api/v1/pub/{path}", json=body, timeout=10,
                                headers={"Authorization": f"Bearer {token}"})
    return response


def test_a_personal_token_is_told_to_issue_a_token_with_the_scope(base, mcp_url, owner):
    token = token_for(owner, scopes="email:read")
    expected = f"Issue a token with mailbox:read under Settings → Developers: {settings.QMAILING_BASE_URL}{DEVELOPERS}#connect"
    refused = _rest(base, token, "GET", "mailboxes")
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert refused.json()["detail"].endswith(expected)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="QMailing", error="insufficient_scope", scope="mailbox:read"'
    assert "reconnect" not in refused.json()["detail"]
    assert "Issue a token with mailbox:read under Settings → Developers" in _tool(mcp_url, token, "qmailing_list_mailboxes", {})


def test_an_oauth_token_is_told_to_reconnect_the_app_and_grant_the_scope(base, mcp_url, client, owner):
    application, tokens = _authorise(client, owner.users.get(), name="Claude", scope="email:read")
    token = tokens["access_token"]
    link = f"{settings.QMAILING_BASE_URL}{DEVELOPERS}#oauth-app-{application.pk}"
    refused = _rest(base, token, "GET", "mailboxes")
    assert refused.status_code == 403 and refused.json()["requiredScopes"] == ["mailbox:read"]
    detail = refused.json()["detail"]
    assert "reconnect Claude and grant mailbox:read on QMailing's consent page" in detail and detail.endswith(link)
    assert "Issue a token" not in detail
    text = _tool(mcp_url, token, "qmailing_list_mailboxes", {})
    assert "reconnect Claude and grant mailbox:read" in text and f"{DEVELOPERS}#oauth-app-{application.pk}" in text
    # The link leads to the app's row on the Developers page.
    client.force_login(owner.users.get())
    assert f'id="oauth-app-{application.pk}"' in client.get(DEVELOPERS).content.decode()


def test_a_refused_send_says_what_waits_in_drafts(base, mcp_url, client, owner):
    mailbox = owner.mailboxes.get()
    application, tokens = _authorise(client, owner.users.get(), name="Claude",
                                     scope="mailbox:read email:read email:write")
    token = tokens["access_token"]
    created = _rest(base, token, "POST", f"mailboxes/{mailbox.pk}/drafts",
                    {"to": ["ada@example.com"], "subject": "Samples", "text": "They shipped today."})
    assert created.status_code == 201, created.text
    draft_id = created.json()["id"]

    # Sending the draft: refused, and the draft is indeed still in Drafts.
    for detail in (_rest(base, token, "POST", f"drafts/{draft_id}/send", {}).json()["detail"],
                   _tool(mcp_url, token, "qmailing_send_draft", {"draft_id": draft_id})):
        assert "Nothing was sent: the draft stays in Drafts, waiting for a person to send it." in detail
        assert "For it to send by itself, reconnect Claude and grant email:send" in detail
    assert Draft.objects.filter(pk=draft_id, status=Draft.Status.DRAFT).exists()

    # A new message: nothing was saved (true: still the one draft), and the way to leave it for a person.
    message = {"mailbox_id": str(mailbox.pk), "to": ["ada@example.com"], "subject": "Hi", "text": "Hello"}
    refused = _rest(base, token, "POST", f"mailboxes/{mailbox.pk}/send",
                    {key: value for key, value in message.items() if key != "mailbox_id"})
    assert refused.status_code == 403
    for detail in (refused.json()["detail"], _tool(mcp_url, token, "qmailing_send_email", message)):
        assert "Nothing was sent and nothing was saved." in detail
        assert "save it as a draft with qmailing_create_draft" in detail
    assert Draft.objects.filter(mailbox=mailbox).count() == 1

    # A personal token gets the same account of what happened, and its own way to the scope.
    personal = token_for(owner, scopes="email:write")
    detail = _rest(base, personal, "POST", f"drafts/{draft_id}/send", {}).json()["detail"]
    assert "the draft stays in Drafts, waiting for a person" in detail and "Issue a token with email:send" in detail
