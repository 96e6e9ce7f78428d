"""The account pages (allauth's, in our layout) at 390 px wide in a real browser: none is wider than the screen.

Skips, saying why, where /usr/bin/chromium or the playwright package is missing (as tests/qmailing/test_responsive.py).
"""

import os
from pathlib import Path

import pytest

from tests.browser import WIDTH, needs_chromium
from tests.qmailing.test_responsive import PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # the server thread sees the rows
    needs_chromium,
]


def test_account_pages_fit_a_390px_screen(live_server, browser_page, tmp_path):
    from tests.conftest import make_user

    make_user("a-rather-long-address-for-a-small-screen@example.org")
    page, base = browser_page, live_server.url
    shots = Path(os.environ.get("QMAILING_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    widths = {}

    def measure(name):
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(shots / f"account-{name}-390.png"), full_page=True)

    for name, path in {"sign-in": "/accounts/login/", "sign-up": "/accounts/signup/",
                       "reset": "/accounts/password/reset/"}.items():
        page.goto(base + path)
        measure(name)
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", "a-rather-long-address-for-a-small-screen@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("main form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(base + "/accounts/2fa/totp/activate/")  # asks for the password again first
    measure("reauthenticate")
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/accounts/2fa/totp/activate/")
    for name, path in {"totp": "/accounts/2fa/totp/activate/", "security": "/settings/security/",
                       "delete": "/settings/security/delete/", "password change": "/accounts/password/change/",
                       "email": "/accounts/email/", "two-factor": "/accounts/2fa/", "passkeys": "/accounts/2fa/webauthn/",
                       "add passkey": "/accounts/2fa/webauthn/add/", "sessions": "/accounts/sessions/"}.items():
        response = page.goto(base + path)
        assert response.status == 200, name
        measure(name.replace(" ", "-"))
    page.goto("about:blank")  # no request of these pages still in flight when the server stops
    too_wide = {name: width for name, width in widths.items() if width > WIDTH}
    assert not too_wide, f"pages wider than {WIDTH} px: {too_wide}"
