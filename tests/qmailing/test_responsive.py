"""At 390 px wide no page is wider than the viewport: measured in a real browser (Debian's Chromium via Playwright).

Skips, saying why, where /usr/bin/chromium or the playwright package is missing; CI has both. No network:
Playwright drives the system Chromium against pytest-django's live server on loopback.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.browser import WIDTH, needs_chromium

PASSWORD = "correct horse battery 9"

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # the server thread sees the rows
    needs_chromium,
]


@pytest.fixture
def site(live_server, settings):
    """An account with a pending custom domain (long DKIM key) and a mailbox holding mail with long unbroken text."""
    from domains.services import domain_add
    from mailboxes.selectors import mailbox_list
    from tests.conftest import make_user
    from tests.mailboxes.outbound_helpers import receive

    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]  # nothing is looked up here; never the network
    user = make_user("wide@example.org")
    domain = domain_add(account=user.account, name="a-rather-long-brand-name-for-testing.example")
    mailbox = mailbox_list(account=user.account)[0]
    start = timezone.now() - timedelta(hours=1)
    emails = [receive(mailbox, subject=f"Quarterly numbers {n} " + "x" * 90, date=start + timedelta(minutes=n),
                      text="Hello " + "unbroken" * 40 + "\nhttps://example.com/" + "a" * 200 + "\n",
                      attachments=[("a-long-attachment-name-" + "y" * 60 + ".txt", "text/plain", b"x")])
              for n in range(3)]
    return {"base": live_server.url, "user": user, "domain": domain, "mailbox": mailbox, "email": emails[-1]}


def test_no_page_is_wider_than_a_390px_screen(site, browser_page, tmp_path):
    page, base = browser_page, site["base"]
    page.goto(f"{base}/accounts/login/")
    widths = {"sign-in": page.evaluate("document.documentElement.scrollWidth")}
    page.fill("input[name=login]", site["user"].email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")
    paths = {
        "dashboard": "/",
        "domain detail": f"/domains/{site['domain'].id}/",
        "mail list": f"/mailboxes/{site['mailbox'].id}/mail/",
        "email": f"/mail/{site['email'].id}/",
        "compose": f"/mailboxes/{site['mailbox'].id}/compose/",
        "developers": "/settings/developers/",
        "plan": "/settings/plan",
        "MCP docs": "/docs/mcp",
        "error docs": "/docs/errors",
        "not found": "/no/such/page/",
        "password change": "/accounts/password/change/",
    }
    shots = Path(os.environ.get("QMAILING_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        response = page.goto(base + path)
        assert response.status == (404 if name == "not found" else 200), name
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(shots / f"{re.sub(r'[^a-z]+', '-', name.lower())}-390.png"), full_page=True)
    too_wide = {name: width for name, width in widths.items() if width > WIDTH}
    assert not too_wide, f"pages wider than {WIDTH} px: {too_wide}"


def test_dkim_value_stays_on_one_line_and_copies(site, browser_page):
    page, base = browser_page, site["base"]
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", site["user"].email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(f"{base}/domains/{site['domain'].id}/")
    cell = page.evaluate("(() => { const e = document.getElementById('value-dkim');"
                         " return {height: e.clientHeight, line: parseFloat(getComputedStyle(e).lineHeight) || 20,"
                         " scroll: e.scrollWidth, width: e.clientWidth}; })()")
    assert cell["height"] < 2.5 * cell["line"]  # one line (plus padding), not 50
    assert cell["scroll"] > cell["width"]  # the rest is reached by scrolling the cell
    page.click('button[data-copy="value-dkim"]')
    assert page.evaluate("navigator.clipboard.readText()") == page.text_content("#value-dkim")
    assert page.text_content('button[data-copy="value-dkim"]') == "Copied"
