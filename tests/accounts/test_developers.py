"""Settings → Developers: the "Connect to Claude" wizard over HTTP, the token list, revocation, usage."""

import json
import re

import pytest
from django.urls import reverse
from oauth2_provider.models import AccessToken

from accounts.connect import USE_CASES
from accounts.request_log import request_log_flush
from accounts.scopes import SCOPES
from accounts.tokens import token_issue
from tests.conftest import make_user

INDEX = "/settings/developers/"
CONNECT = "/settings/developers/connect/"
TOKEN_RE = re.compile(r"qm_live_[0-9A-Za-z]{36}")


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner.users.get())
    return client


def _step2(client, client_key, use_case="triage", name=""):
    response = client.get(CONNECT, {"client": client_key, "use_case": use_case, "name": name})
    assert response.status_code == 200, response.content
    return response


def _nonce(page):
    return re.search(r'name="nonce" value="([^"]+)"', page).group(1)


def _checked_scopes(page):
    return sorted(re.findall(r'<input type="checkbox" name="scopes" value="([^"]+)"[^>]*checked', page))


def _issue(client, client_key="cursor", scopes=("mailbox:read",), name="", use_case="triage"):
    page = _step2(client, client_key, use_case=use_case, name=name).content.decode()
    response = client.post(CONNECT, {"client": client_key, "name": name, "nonce": _nonce(page), "scopes": list(scopes)})
    return response


def _mailboxes(client, token):
    return client.get("/api/v1/pub/mailboxes", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_wizard_end_to_end_token_shown_once_usable_listed_and_revoked(signed_in, owner):
    index = signed_in.get(INDEX)
    assert index.status_code == 200 and "Connect to Claude" in index.content.decode()

    response = _issue(signed_in, "cursor", scopes=["mailbox:read", "email:read"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    tokens = set(TOKEN_RE.findall(page))
    assert len(tokens) == 1
    token = tokens.pop()
    assert token not in json.dumps(dict(signed_in.session))  # never kept in the session

    # Usable at once, by the account that issued it, bound to that client and those scopes.
    api = _mailboxes(signed_in, token)
    request_log_flush()
    assert api.status_code == 200, api.content
    stored = AccessToken.objects.get()
    assert stored.application.name == "Cursor" and stored.scope == "email:read mailbox:read"
    assert stored.user.account_id == owner.pk

    # Never again: not on reload of the list, not on a re-POST of the same form.
    listing = signed_in.get(INDEX).content.decode()
    assert token not in listing
    assert "Cursor" in listing and "<code>email:read</code><code>mailbox:read</code>" in listing
    assert "not in the last 30 days" not in listing  # last used comes from the request log
    replay = signed_in.post(CONNECT, {"client": "cursor", "name": "", "nonce": _nonce(_step2(signed_in, "cursor").content.decode()),
                                      "scopes": ["mailbox:read"]})
    assert replay.status_code == 200  # a fresh form issues a fresh token...
    assert AccessToken.objects.count() == 2
    reposted = signed_in.post(CONNECT, {"client": "cursor", "name": "", "nonce": "already-used", "scopes": ["mailbox:read"]})
    assert reposted.status_code == 302 and TOKEN_RE.search(reposted.url or "") is None  # ...a used one issues nothing
    assert AccessToken.objects.count() == 2

    # Revoke: a confirmation page, then POST; the very next call is refused.
    confirm = signed_in.get(reverse("developers:revoke", args=[stored.pk]))
    assert confirm.status_code == 200 and "csrfmiddlewaretoken" in confirm.content.decode()
    revoked = signed_in.post(reverse("developers:revoke", args=[stored.pk]))
    assert revoked.status_code == 302 and revoked.url == INDEX
    assert _mailboxes(signed_in, token).status_code == 401
    assert not AccessToken.objects.filter(pk=stored.pk).exists()


def test_reposting_the_issue_form_issues_nothing(signed_in):
    page = _step2(signed_in, "cursor").content.decode()
    data = {"client": "cursor", "name": "", "nonce": _nonce(page), "scopes": ["mailbox:read"]}
    first = signed_in.post(CONNECT, data)
    assert first.status_code == 200 and TOKEN_RE.search(first.content.decode())
    again = signed_in.post(CONNECT, data, follow=True)
    assert TOKEN_RE.search(again.content.decode()) is None and "already used" in again.content.decode()
    assert AccessToken.objects.count() == 1


def test_revoke_needs_post_with_csrf(owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner.users.get())
    _, access_token = token_issue(account=owner, user=owner.users.get(), client="Cursor", scopes="mailbox:read")
    assert strict.post(reverse("developers:revoke", args=[access_token.pk])).status_code == 403
    assert AccessToken.objects.filter(pk=access_token.pk).exists()


@pytest.mark.parametrize("use_case", list(USE_CASES))
def test_use_case_preselects_scopes(signed_in, use_case):
    page = _step2(signed_in, "cursor", use_case=use_case).content.decode()
    assert _checked_scopes(page) == sorted(USE_CASES[use_case][1])


def test_use_case_scopes_are_the_contract_ones():
    assert sorted(USE_CASES["triage"][1]) == ["domain:read", "email:read", "mailbox:read"]
    assert sorted(USE_CASES["assistant"][1]) == ["domain:read", "email:read", "email:send", "email:write", "mailbox:read"]
    assert sorted(USE_CASES["automation"][1]) == sorted(SCOPES)


def test_adjusted_scopes_are_the_ones_issued(signed_in):
    assert _issue(signed_in, "continue", use_case="automation", scopes=["email:read", "webhook:manage"]).status_code == 200
    assert AccessToken.objects.get().scope == "email:read webhook:manage"


def test_no_scope_is_a_form_error(signed_in):
    page = _step2(signed_in, "cursor").content.decode()
    response = signed_in.post(CONNECT, {"client": "cursor", "nonce": _nonce(page)})
    assert response.status_code == 400 and "Choose at least one scope" in response.content.decode()
    assert not AccessToken.objects.exists()


def test_custom_client_needs_a_name(signed_in):
    response = signed_in.get(CONNECT, {"client": "custom", "use_case": "triage", "name": "  "})
    assert response.status_code == 400 and "Name your custom client" in response.content.decode()


def _snippet(page):
    return re.search(r'<pre tabindex="0" class="mono copy-text" id="snippet"[^>]*>(.*?)</pre>', page, re.S).group(1)


def test_claude_desktop_snippet(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "claude_desktop").content.decode()
    token = TOKEN_RE.search(page).group(0)
    config = json.loads(_snippet(page).replace("&quot;", '"'))
    server = config["mcpServers"]["qmailing"]
    assert server["command"] == "npx"
    assert server["args"][:3] == ["mcp-remote", "https://qm.example.com/mcp", "--header"]
    header = server["args"][3].replace("${QMAILING_AUTH_HEADER}", server["env"]["QMAILING_AUTH_HEADER"])
    assert header == f"Authorization:Bearer {token}"
    assert "claude_desktop_config.json" in page
    assert AccessToken.objects.get().application.name == "Claude Desktop"


def test_claude_desktop_snippet_allows_plain_http_only_when_the_server_is_not_https(signed_in, settings):
    settings.QMAILING_BASE_URL = "http://qm.internal:8000"
    page = _issue(signed_in, "claude_desktop").content.decode()
    args = json.loads(_snippet(page).replace("&quot;", '"'))["mcpServers"]["qmailing"]["args"]
    assert args[1] == "http://qm.internal:8000/mcp" and args[-1] == "--allow-http"
    settings.QMAILING_BASE_URL = "http://localhost:8000"
    page = _issue(signed_in, "claude_desktop").content.decode()
    assert "--allow-http" not in page


def test_cursor_snippet(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "cursor").content.decode()
    token = TOKEN_RE.search(page).group(0)
    config = json.loads(_snippet(page).replace("&quot;", '"'))
    assert config == {"mcpServers": {"qmailing": {"url": "https://qm.example.com/mcp",
                                                  "headers": {"Authorization": f"Bearer {token}"}}}}
    assert "~/.cursor/mcp.json" in page


def test_continue_snippet(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "continue").content.decode()
    token = TOKEN_RE.search(page).group(0)
    text = _snippet(page).replace("&quot;", '"')
    assert text.startswith("mcpServers:\n  - name: QMailing\n    type: streamable-http\n")
    assert 'url: "https://qm.example.com/mcp"' in text
    assert f'Authorization: "Bearer {token}"' in text and "config.yaml" in page


def test_custom_snippet_is_curl_against_the_rest_api(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "custom", name="Inbox bot").content.decode()
    token = TOKEN_RE.search(page).group(0)
    assert (f'curl -s -H &quot;Authorization: Bearer {token}&quot; '
            f'&quot;https://qm.example.com/api/v1/pub/mailboxes?limit=10&quot;') in _snippet(page)
    assert AccessToken.objects.get().application.name == "Inbox bot"


def test_claude_ai_gets_the_connector_url_and_no_token(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    response = signed_in.get(CONNECT, {"client": "claude_ai", "use_case": "triage"})
    page = response.content.decode()
    assert response.status_code == 200 and "https://qm.example.com/mcp" in page and "OAuth" in page
    assert TOKEN_RE.search(page) is None and not AccessToken.objects.exists()
    page = signed_in.get(CONNECT, {"client": "claude_ai", "use_case": "triage"}).content.decode()
    forged = signed_in.post(CONNECT, {"client": "claude_ai", "nonce": "x", "scopes": ["mailbox:read"]})
    assert forged.status_code == 400 and not AccessToken.objects.exists()


def test_custom_client_name_is_html_escaped(signed_in):
    evil = '<script>alert("x")</script>'
    page = _issue(signed_in, "custom", name=evil).content.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    listing = signed_in.get(INDEX).content.decode()
    assert "<script>alert" not in listing and "&lt;script&gt;alert" in listing
    step2 = _step2(signed_in, "custom", name=evil).content.decode()
    assert "<script>alert" not in step2


def test_outsider_gets_404_for_another_accounts_token(client, owner, outsider):
    _, access_token = token_issue(account=owner, user=owner.users.get(), client="Owner's bot", scopes="mailbox:read")
    client.force_login(outsider.users.get())
    url = reverse("developers:revoke", args=[access_token.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert client.post(reverse("developers:revoke", args=[999999])).status_code == 404
    assert AccessToken.objects.filter(pk=access_token.pk).exists()
    assert "Owner&#x27;s bot" not in client.get(INDEX).content.decode()  # only the account's own tokens are listed
    client.force_login(owner.users.get())
    assert "Owner&#x27;s bot" in client.get(INDEX).content.decode()


def test_developers_page_shows_usage_against_the_daily_cap(client, free_account):
    from tests.api_helpers import token_for

    token = token_for(free_account, scopes="mailbox:read")
    for _ in range(3):
        assert _mailboxes(client, token).status_code == 200
    request_log_flush()
    client.force_login(free_account.users.get())
    page = client.get(INDEX).content.decode()
    assert '<span class="usage-figure">3</span> / 25 calls today' in page
    assert 'aria-valuemax="25" aria-valuenow="3"' in page and "22 calls left today" in page


def test_developers_page_requires_sign_in(client, db):
    assert client.get(INDEX).status_code == 302
    user = make_user("nobody@example.com")
    user.account = None
    user.save()
    client.force_login(user)
    # A user without an account gets one on the first page they open (tests/accounts/test_provisioning.py).
    assert client.get(INDEX).status_code == 200
    user.refresh_from_db()
    assert user.account is not None


def test_nav_links_to_developers(signed_in):
    assert 'href="/settings/developers/"' in signed_in.get("/").content.decode()


def _current_step(page):
    return re.findall(r'<li class="step step-current" aria-current="step">\s*<span[^>]*>(\d)</span>\s*'
                      r'<span class="step-title">([^<]+)', page)


def test_wizard_steps_render_in_order_and_explain_themselves(signed_in):
    index = signed_in.get(INDEX).content.decode()
    assert _current_step(index) == [("1", "Client"), ("2", "Use case")]
    assert "Step 1 · Client" in index and "Step 2 · Use case" in index
    assert "Pick the app your agent runs in" in index and "proposes the smallest set of scopes" in index
    step3 = _step2(signed_in, "cursor").content.decode()
    assert _current_step(step3) == [("3", "Scopes"), ("4", "Mailboxes")]
    assert "Untick anything this client should not" in step3 and "only the ones you tick" in step3
    assert step3.count('class="step step-done"') == 2
    issued = _issue(signed_in, "cursor").content.decode()
    assert _current_step(issued) == [("5", "Token")] and "shown only this once" in issued
    assert issued.count('class="step step-done"') == 4


def test_issued_page_has_token_server_url_snippet_with_copy_buttons_a_verify_hint_and_the_docs(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "cursor", scopes=["mailbox:read"]).content.decode()
    token = TOKEN_RE.search(page).group(0)
    assert re.search(r'<code tabindex="0" class="copy-text" id="token"[^>]*>' + token + "</code>", page)
    assert '<code tabindex="0" class="copy-text" id="mcp-url" aria-labelledby="mcp-url-label">https://qm.example.com/mcp</code>' in page
    for target in ("token", "mcp-url", "snippet", "verify"):
        assert f'data-copy="{target}"' in page, target
    snippet = _snippet(page)
    assert "https://qm.example.com/mcp" in snippet and token in snippet
    assert "qmailing_list_mailboxes" in page and "Verify the connection" in page
    assert f'curl -s -i -H &quot;Authorization: Bearer {token}&quot; &quot;https://qm.example.com/api/v1/pub/mailboxes?limit=1&quot;' in page
    assert 'href="https://qm.example.com/docs/mcp"' in page


def test_verify_hint_warns_when_the_token_cannot_list_mailboxes(signed_in):
    page = _issue(signed_in, "cursor", scopes=["email:read"]).content.decode()
    assert "lacks <code>mailbox:read</code>" in page


def test_claude_code_snippet_is_the_claude_mcp_add_command(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = _issue(signed_in, "claude_code").content.decode()
    token = TOKEN_RE.search(page).group(0)
    assert _snippet(page) == ("claude mcp add --transport http --scope user qmailing &#x27;https://qm.example.com/mcp&#x27; "
                              f"--header &#x27;Authorization: Bearer {token}&#x27;")
    assert AccessToken.objects.get().application.name == "Claude Code"


def test_claude_ai_path_explains_the_oauth_connect_and_the_verify_step(signed_in, settings):
    settings.QMAILING_BASE_URL = "https://qm.example.com"
    page = signed_in.get(CONNECT, {"client": "claude_ai", "use_case": "triage"}).content.decode()
    assert "No token needed" in page and "consent page" in page and "Add custom connector" in page
    assert 'data-copy="mcp-url"' in page and "qmailing_list_mailboxes" in page and "OAuth apps" in page
    assert 'href="https://qm.example.com/docs/mcp"' in page


def test_token_list_shows_last_used_relative_with_the_exact_time_in_the_title(signed_in, owner):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import RequestLog
    from accounts.request_log import request_log_write

    used, access_token = token_issue(account=owner, user=owner.users.get(), client="Cursor", scopes="mailbox:read")
    token_issue(account=owner, user=owner.users.get(), client="Idle bot", scopes="email:read")
    request_log_write(account=owner, token_id=access_token.pk, operation="qmailing_list_mailboxes", status=200,
                      duration_ms=3)
    when = timezone.now() - timedelta(hours=3, minutes=10)
    RequestLog.objects.update(created_at=when)
    page = signed_in.get(INDEX).content.decode()
    tokens = page.split('id="tokens"', 1)[1].split('id="oauth-apps"', 1)[0]
    cursor_row = tokens.split("Cursor", 1)[1].split("</tr>", 1)[0]
    assert f'title="{when:%a} {when.day} {when:%b %Y, %H:%M} UTC">3 hours ago</time>' in cursor_row
    idle_row = tokens.split("Idle bot", 1)[1].split("</tr>", 1)[0]
    assert "not in the last 30 days" in idle_row
    assert f'{access_token.created:%Y-%m-%d}' in cursor_row and f'{access_token.expires:%Y-%m-%d}' in cursor_row
    assert reverse("developers:revoke", args=[access_token.pk]) in cursor_row
    assert used not in page
    confirm = signed_in.get(reverse("developers:revoke", args=[access_token.pk])).content.decode()
    assert "3 hours ago" in confirm and "<code>mailbox:read</code>" in confirm


def test_the_mailboxes_step_limits_the_token_and_the_list_shows_the_limit(signed_in, owner):
    from tests.qmailing.test_permission_matrix import other_mailbox

    first, second = owner.mailboxes.get(), other_mailbox(owner)
    page = _step2(signed_in, "cursor").content.decode()
    assert re.search(r'<input type="radio" name="mailbox_access" value="all"[^>]*checked', page)
    for mailbox in (first, second):
        assert f'value="{mailbox.pk}"' in page and mailbox.address in page

    def issue(**mailbox_fields):
        page = _step2(signed_in, "cursor").content.decode()
        return signed_in.post(CONNECT, {"client": "cursor", "name": "", "nonce": _nonce(page),
                                        "scopes": ["mailbox:read"], **mailbox_fields})

    refused = issue(mailbox_access="some")
    assert refused.status_code == 400 and "Tick at least one mailbox" in refused.content.decode()
    assert not AccessToken.objects.exists()
    stranger = make_user("stranger@example.net").account.mailboxes.get()
    assert issue(mailbox_access="some", mailboxes=[str(stranger.pk)]).status_code == 400
    assert not AccessToken.objects.exists()
    ticked_but_all = issue(mailbox_access="all", mailboxes=[str(second.pk)])  # never an all-mailbox token then
    assert ticked_but_all.status_code == 400 and "You ticked mailboxes" in ticked_but_all.content.decode()
    assert not AccessToken.objects.exists()

    issued = issue(mailbox_access="some", mailboxes=[str(second.pk)])
    assert issued.status_code == 200
    assert f"<code>{second.address}</code>" in issued.content.decode()
    token = TOKEN_RE.search(issued.content.decode()).group(0)
    assert [item["id"] for item in _mailboxes(signed_in, token).json()["items"]] == [str(second.pk)]
    issue(mailbox_access="all")

    table = signed_in.get(INDEX).content.decode().split('id="tokens"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr>.*?</tr>", table, re.S)
    limits = sorted(re.findall(r"<td>(.*?)</td>", row, re.S)[2] for row in rows)  # client, scopes, mailboxes
    assert limits == ["All mailboxes", second.address]
