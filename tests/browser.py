"""The real browser the dashboard tests drive: Debian's Chromium through Playwright, headless, no network.

`browser_page` (a fixture, made available in tests/conftest.py) is a 390 px wide page; tests that need
the system Chromium carry `needs_chromium`. scripts/test installs Chromium where it can and stops where it
cannot, so a browser test never passes by skipping: it skips only when QMAILING_SKIP_BROWSER_TESTS=1 says so.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]
WIDTH = 390
HEIGHT = 844

needs_chromium = pytest.mark.skipif(
    bool(os.environ.get("QMAILING_SKIP_BROWSER_TESTS")) and not Path(CHROMIUM).exists(),
    reason=f"QMAILING_SKIP_BROWSER_TESTS is set and {CHROMIUM} is missing: apt-get install chromium to run them")


def playwright_api():
    return pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install -r requirements.txt)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


@pytest.fixture
def browser_page(monkeypatch):
    """A 390 × 844 page in a fresh headless Chromium, closed after the test."""
    sync_api = playwright_api()
    # Playwright's sync API runs an event loop in this thread; the ORM work is done before it starts.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        finally:
            browser.close()
