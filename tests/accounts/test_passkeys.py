"""Passkeys (WebAuthn, allauth.mfa) in a real browser: add one from Security, sign in with it alone, and use it
as the second factor after a password sign-in.

Chromium's virtual authenticator (CDP WebAuthn domain) stands in for a phone or security key: it has resident
keys and user verification, and it answers every ceremony by itself. The origin is http://localhost, which is a
secure context for the browser and which python-fido2 accepts without MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN, so the
test runs with the production setting (off). Skips, saying why, where /usr/bin/chromium or playwright is missing.
"""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.browser import WIDTH, needs_chromium

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # the server thread sees the rows
    needs_chromium,
]

EMAIL = "passkey-person@example.org"
PASSWORD = "correct horse battery 9"  # tests.conftest.make_user's


def localhost(url):
    """live_server's URL on the host name "localhost" (WebAuthn needs a secure context; http://localhost is one)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"localhost:{parts.port}"))


def open_menu(page):
    """The header's links sit behind "Menu" on a narrow screen."""
    toggle = page.get_by_role("button", name="Menu")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()


def arrive(page, url, problems):
    """Wait for `url`; if the page lands elsewhere, say where, what it says, and what went wrong on the way."""
    try:
        page.wait_for_url(url, timeout=15_000)
    except Exception:
        h1 = page.locator("h1").all_inner_texts()
        text = page.locator("main").inner_text()[:600] if page.locator("main").count() else page.content()[:600]
        raise AssertionError(f"expected {url}, at {page.url} (h1 {h1}): {text!r}; problems: {problems}") from None


def test_passkey_added_from_security_signs_in_alone_and_as_second_factor(live_server, browser_page, settings, tmp_path):
    from allauth.mfa.models import Authenticator

    from tests.conftest import make_user

    expect = pytest.importorskip("playwright.sync_api").expect
    assert settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN is False  # as in production: localhost needs no exception
    user = make_user(EMAIL)
    assert user.emailaddress_set.get().verified

    page, base = browser_page, localhost(live_server.url)
    shots = Path(os.environ.get("QMAILING_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    def shoot(name):
        page.screenshot(path=str(shots / f"passkeys-{name}-390.png"), full_page=True)

    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text} ({page.url})"))
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc} ({page.url})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.request.method} {r.url}"))

    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator_id = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]

    # 1. Sign in with the password.
    page.goto(base + "/accounts/login/")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    arrive(page, f"{base}/", problems)
    expect(page).to_have_title(re.compile("Overview"))

    # 2. Settings → Security → Passkeys and security keys → Add.
    open_menu(page)
    page.get_by_role("link", name="Security", exact=True).click()
    arrive(page, f"{base}/settings/security/", problems)
    expect(page.locator("h1")).to_have_text("Security")
    expect(page.locator("main")).to_contain_text("none yet: add one to sign in without a password")
    page.get_by_role("link", name="Passkeys and security keys").click()
    arrive(page, f"{base}/accounts/2fa/webauthn/", problems)
    expect(page.locator("main")).to_contain_text("No security keys have been added.")
    page.locator("main").get_by_role("link", name="Add", exact=True).click()
    # allauth 65 asks for the password again before a second factor is added, even right after signing in.
    arrive(page, re.compile(re.escape(f"{base}/accounts/reauthenticate/?next=")), problems)
    expect(page.locator("h1")).to_have_text("Confirm Access")
    expect(page.locator("main")).to_contain_text("Please reauthenticate to safeguard your account.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    arrive(page, f"{base}/accounts/2fa/webauthn/add/", problems)
    expect(page.locator("h1")).to_have_text("Add Security Key")
    shoot("add")
    page.get_by_label("Name").fill("Test phone")
    assert page.get_by_label("Passwordless").is_checked()  # ticked by default: a passkey signs in without the password
    page.get_by_role("button", name="Add", exact=True).click()
    # The first key also turns on recovery codes, which allauth shows next.
    arrive(page, f"{base}/accounts/2fa/recovery-codes/", problems)
    expect(page.locator("main")).to_contain_text(re.compile("recovery codes", re.I))
    shoot("recovery-codes")
    key = Authenticator.objects.get(user=user, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().is_passwordless is True
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    # 3. It is listed, on Security and on the passkeys page.
    open_menu(page)
    page.get_by_role("link", name="Security", exact=True).click()
    arrive(page, f"{base}/settings/security/", problems)
    expect(page.locator("main .badge", has_text="passkey")).to_have_text("1 passkey")
    shoot("security")
    page.get_by_role("link", name="Passkeys and security keys").click()
    arrive(page, f"{base}/accounts/2fa/webauthn/", problems)
    row = page.locator("main tr", has_text="Test phone")
    expect(row).to_contain_text("Passkey")
    expect(row).to_contain_text("Not used.")
    shoot("list")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, "the passkeys list is wider than the screen"

    # 4. Sign out, then sign in with the passkey alone.
    open_menu(page)
    page.get_by_role("button", name="Sign out").click()
    arrive(page, f"{base}/accounts/login/", problems)
    expect(page.locator("h1")).to_have_text("Sign in")
    page.get_by_role("button", name="Sign in with a passkey").click()
    arrive(page, f"{base}/", problems)
    expect(page).to_have_title(re.compile("Overview"))
    expect(page.locator("h1")).to_have_text(user.account.name)
    open_menu(page)
    expect(page.locator("header .who")).to_contain_text(EMAIL)
    key.refresh_from_db()
    assert key.last_used_at is not None

    # 5. Sign out; the password now asks for the second factor, which the passkey gives.
    page.get_by_role("button", name="Sign out").click()
    arrive(page, f"{base}/accounts/login/", problems)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    arrive(page, f"{base}/accounts/2fa/authenticate/", problems)
    expect(page.locator("h1")).to_have_text("Two-Factor Authentication")
    expect(page.locator("main")).to_contain_text("Your account is protected by two-factor authentication.")
    shoot("second-factor")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, "the second-factor page is wider than the screen"
    page.get_by_role("button", name="Use a security key").click()
    arrive(page, f"{base}/", problems)
    expect(page).to_have_title(re.compile("Overview"))
    expect(page.locator("h1")).to_have_text(user.account.name)

    page.goto("about:blank")  # no request still in flight when the server stops
    assert not problems, "\n".join(problems)
