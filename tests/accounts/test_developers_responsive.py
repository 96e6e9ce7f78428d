"""The Developers pages at 390 px wide, in a real browser (Debian's Chromium via Playwright): no page is wider
than the screen, with long client names, long operation names, OAuth apps and a full usage chart; the issued
token's copy button puts exactly the token on the clipboard.

Skips, saying why, where /usr/bin/chromium or the playwright package is missing (as tests/qmailing/test_responsive.py).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.browser import WIDTH, needs_chromium


pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # the server thread sees the rows
    needs_chromium,
]


@pytest.fixture
def site(live_server, settings):
    """A signed-in account with long-named tokens, an OAuth app, and 30 days of calls under long operation names."""
    from oauth2_provider.models import AccessToken, Application, Grant, set_token_value

    from accounts.models import RequestLog
    from accounts.request_log import request_log_write
    from accounts.tokens import access_token_generator, token_issue
    from tests.conftest import make_user

    settings.QMAILING_BASE_URL = live_server.url
    user = make_user("wide@example.org", plan="FREE")
    account = user.account
    _, personal = token_issue(account=account, user=user, client="An inbox bot with a rather long name " + "x" * 40,
                              scopes="mailbox:read domain:read email:read email:write email:send webhook:manage")
    application = Application.objects.create(
        name="Claude " + "y" * 60, client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://a-very-long-callback-host-name-for-testing.example/api/mcp/auth_callback",
        registration_source=Application.RegistrationSource.DCR)
    oauth_token = AccessToken(user=user, application=application, scope="mailbox:read email:read",
                              expires=timezone.now() + timedelta(hours=1))
    set_token_value(oauth_token, access_token_generator())
    oauth_token.save()
    Grant.objects.create(user=user, application=application, code=secrets.token_urlsafe(32),
                         expires=timezone.now() + timedelta(minutes=5), redirect_uri=application.redirect_uris,
                         scope="email:send", code_challenge="x" * 43, code_challenge_method="S256")
    for days_ago in range(30):
        for status in (200, 404, 429, 500):
            request_log_write(account=account, token_id=personal.pk,
                              operation="/api/v1/pub/a-long-path-without-an-operation/" + "z" * 60, status=status,
                              duration_ms=5)
        RequestLog.objects.filter(created_at__gte=timezone.now() - timedelta(minutes=1)).update(
            created_at=timezone.now() - timedelta(days=days_ago))
    for number in range(12):
        request_log_write(account=account, token_id=oauth_token.pk, operation=f"qmailing_operation_{number}",
                          status=200, duration_ms=3)
    login = Client()
    login.force_login(user)
    return {"base": live_server.url, "session": login.cookies[settings.SESSION_COOKIE_NAME].value,
            "personal": personal, "application": application}


def _sign_in(page, site):
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": site["session"], "url": site["base"]}])


def _width(page):
    return page.evaluate("document.documentElement.scrollWidth")


def test_developers_pages_fit_a_390px_screen(site, browser_page, tmp_path):
    tmp_path = Path(os.environ.get("QMAILING_SCREENSHOT_DIR", tmp_path))
    tmp_path.mkdir(parents=True, exist_ok=True)
    page, base = browser_page, site["base"]
    _sign_in(page, site)
    pages = {
        "index": "/settings/developers/",
        "client error": "/settings/developers/connect/?client=custom&use_case=triage&name=",
        "scopes": "/settings/developers/connect/?client=custom&use_case=automation&name=" + "n" * 80,
        "claude.ai": "/settings/developers/connect/?client=claude_ai&use_case=triage",
        "revoke token": f"/settings/developers/tokens/{site['personal'].pk}/revoke/",
        "revoke app": f"/settings/developers/oauth-apps/{site['application'].pk}/revoke/",
    }
    widths = {}
    for name, path in pages.items():
        response = page.goto(base + path)
        assert response.status == (400 if name == "client error" else 200), name
        widths[name] = _width(page)
        page.screenshot(path=str(tmp_path / f"{name.replace(' ', '-')}.png"), full_page=True)
    # The chart's table fallback, opened.
    page.goto(base + pages["index"])
    page.click("details.numbers summary")
    widths["index, numbers open"] = _width(page)
    # Every client's issued page.
    for client in ("claude_desktop", "claude_code", "cursor", "continue", "custom"):
        page.goto(f"{base}/settings/developers/connect/?client={client}&use_case=automation&name=bot")
        page.click("main button[type=submit]")
        page.wait_for_selector("#token")
        widths[f"issued {client}"] = _width(page)
        page.screenshot(path=str(tmp_path / f"issued-{client}.png"), full_page=True)
    too_wide = {name: width for name, width in widths.items() if width > WIDTH}
    assert not too_wide, f"pages wider than {WIDTH} px: {too_wide}"


def test_issued_token_copies_to_the_clipboard(site, browser_page):
    page, base = browser_page, site["base"]
    _sign_in(page, site)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(f"{base}/settings/developers/")
    page.check("input[name=client][value=cursor]")
    page.click("main form button[type=submit]")
    page.wait_for_selector("input[name=scopes]")
    page.click("main button[type=submit]")
    page.wait_for_selector("#token")
    token = page.text_content("#token")
    assert token.startswith("qm_live_")
    page.click('button[data-copy="token"]')
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.click('button[data-copy="snippet"]')
    assert token in page.evaluate("navigator.clipboard.readText()")
    # Back on the list, the token is nowhere.
    page.goto(f"{base}/settings/developers/")
    assert token not in page.content()
