"""The dashboard as a new user walks it, in a real browser (Debian's Chromium via Playwright) against the product
served as scripts/run serves it (`manage.py run_all`: daphne, Celery worker and beat, the SMTP server).

One server and one browser context for the module; each numbered step is a test that says what went wrong.
A step whose predecessor failed is skipped, naming what is missing. Then the main pages get screenshots and
an axe-core check (no serious or critical violations; the walk's other pages, such as the issued-token page,
are checked on the way and count too), and the walk is repeated on a 390 px wide screen (no page wider than
the screen; there every stage is tried and all failures are listed together).

Screenshots go to $QMAILING_SCREENSHOT_DIR (else a temporary folder, printed); axe-core is installed once
from scripts/axe (tests/e2e/axe.py) and the check is skipped, saying why, if npm cannot install it.

    scripts/test tests/e2e -q -p no:cacheprovider -s     # -s prints where the screenshots went
"""

import re
import time
import uuid

import pytest

from tests.e2e.walk import (NEW_PASSWORD, PASSWORD, WAIT_MS, Walker, add_domain, create_mailbox, draft_autosave,
                            expect, forward, label, live_mail, mcp_list_mailboxes, navigate, need, open_conversation,
                            open_menu, publish_and_verify, reply, reply_all_page, search_until_found, sign_out,
                            sign_up_and_confirm, trash_and_restore)

RUN = uuid.uuid4().hex[:8]
SUBJECT = f"Launch plan {RUN}"
BODY_WORD = "pineapple"
FILENAME = "lighthouse.txt"
MAIN_PAGES = ["overview", "inbox", "conversation", "compose", "drafts", "search", "domain checklist", "developers",
              "webhooks", "plan", "security"]
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def state():
    return {"timings": {}}


@pytest.fixture(scope="module")
def desktop(browser, server, screenshot_dir, axe_script):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    walker = Walker(page=page, server=server, shots=screenshot_dir, axe_path=axe_script[0], clipboard=True)
    yield walker
    context.close()


def _timed(state, name):
    class Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, kind, *exc):
            if kind is None:  # a finished step only (test_9 counts them)
                state["timings"][name] = round(time.monotonic() - self.start, 1)
    return Timer()


def test_1_sign_up_verify_email_and_add_a_domain(desktop, state):
    with _timed(state, "1 sign-up + domain"):
        state["email"] = f"walker-{RUN}@example.org"
        sign_up_and_confirm(desktop, state["email"], "Walker Example")
        state["signed_up"] = True
        state["domain_url"] = add_domain(desktop, "brand.example")
    desktop.assert_layout("step 1")


def test_2_publish_records_check_now_and_create_a_mailbox(desktop, server, state):
    need(state, "domain_url")
    with _timed(state, "2 verify + mailbox"):
        desktop.page.goto(state["domain_url"])
        publish_and_verify(desktop, server.dns)
        state["address"] = create_mailbox(desktop, "hello", "brand.example")
    desktop.assert_layout("step 2")


def test_3a_new_mail_appears_live_and_opens_as_a_conversation(desktop, state):
    need(state, "address")
    with _timed(state, "3a live mail + conversation"):
        live_mail(desktop, state["address"], SUBJECT, f"Hello! The {BODY_WORD} budget is attached.\n",
                  (FILENAME, b"Quarterly figures, nothing else.\n"))
        state["email_url"] = open_conversation(desktop, SUBJECT, BODY_WORD, FILENAME)
    desktop.assert_layout("step 3a")


def test_3b_reply_all_and_reply(desktop, state):
    need(state, "email_url")
    with _timed(state, "3b reply"):
        reply_all_page(desktop, state["email_url"], SUBJECT, "alice@outside.example")
        reply(desktop, state["email_url"], SUBJECT, "alice@outside.example")
    desktop.assert_layout("step 3b")


def test_3c_forward(desktop, state):
    need(state, "email_url")
    with _timed(state, "3c forward"):
        forward(desktop, state["email_url"], SUBJECT, "bob@outside.example")
    desktop.assert_layout("step 3c")


def test_3d_draft_autosaves_and_resumes_from_drafts(desktop, state):
    need(state, "address")
    with _timed(state, "3d draft"):
        desktop.goto("/mail/", "inbox before compose")
        draft_autosave(desktop, state["address"], f"Draft {RUN}", "Half-written thoughts about the launch.")
    desktop.assert_layout("step 3d")


def test_4_search_by_word_and_attachment_name_then_trash_and_restore(desktop, state):
    need(state, "email_url")
    with _timed(state, "4 search, trash, restore"):
        search_until_found(desktop, BODY_WORD, state["email_url"], "search")
        search_until_found(desktop, FILENAME, state["email_url"], "search by attachment name")
        trash_and_restore(desktop, state["email_url"], SUBJECT)
    desktop.assert_layout("step 4")


def test_5_connect_to_claude_token_mcp_call_and_revoke(desktop, server, state):
    need(state, "address")
    page = desktop.page
    with _timed(state, "5 developers + MCP"):
        desktop.goto("/settings/developers/", "developers", shot=True, axe=True)
        page.get_by_role("radio", name="Claude Desktop").check()
        page.get_by_role("radio", name=re.compile("^Triage")).check()
        page.get_by_role("button", name="Next: choose scopes").click()
        page.wait_for_url(re.compile(re.escape(desktop.url("/settings/developers/connect/"))), timeout=WAIT_MS)
        desktop.check("connect scopes", axe=True)
        expect()(page.get_by_role("checkbox", name=re.compile("mailbox:read|mailboxes", re.I)).first).to_be_checked()
        navigate(page, page.get_by_role("button", name="Issue the token"))
        desktop.check("token issued", axe=True)
        shown = page.locator("#token").inner_text().strip()
        assert shown.startswith("qm_"), f"the page shows no token: {shown!r}"
        page.get_by_role("button", name="Copy the token").click()
        expect()(page.get_by_role("button", name="Copy the token")).to_have_text(re.compile("Copied|Selected"))
        token = page.evaluate("navigator.clipboard.readText()").strip()
        assert token == shown, f"the copy button put {token!r} on the clipboard, the page shows {shown!r}"

        status, reply, _ = mcp_list_mailboxes(server.base, token)
        assert status == 200 and reply is not None, f"MCP tools/call answered {status}: {reply}"
        assert reply["result"]["isError"] is False, reply
        addresses = [item["address"] for item in reply["result"]["structuredContent"]["items"]]
        assert state["address"] in addresses, addresses

        navigate(page, page.get_by_role("link", name="Done: back to Developers"))
        navigate(page, page.get_by_role("link", name=re.compile("^Revoke the token for Claude Desktop")))
        desktop.check("revoke token", axe=True)
        page.get_by_role("button", name="Revoke", exact=True).click()
        page.wait_for_url(desktop.url("/settings/developers/"), timeout=WAIT_MS)
        desktop.message("Revoked the token for Claude Desktop")
        status, body, _ = mcp_list_mailboxes(server.base, token)
        assert status == 401, f"a revoked token's MCP call answered {status}, not 401: {str(body)[:300]}"
    desktop.assert_layout("step 5")


def test_6_sign_out_reset_the_password_and_sign_in_again(desktop, server, state):
    need(state, "signed_up")
    page, outbox = desktop.page, server.outbox
    with _timed(state, "6 password reset"):
        desktop.goto("/", "overview before sign-out")
        sign_out(page)
        desktop.goto("/accounts/login/", "sign-in", shot=True, axe=True)
        expect()(page.get_by_role("button", name="Sign out")).to_have_count(0)
        navigate(page, page.get_by_role("link", name="Forgot your password?"))
        desktop.check("password reset", axe=True)
        page.get_by_label(label("Email")).fill(state["email"])
        navigate(page, page.get_by_role("button", name=re.compile("reset", re.I)))
        desktop.check("password reset sent", axe=True)
        link = outbox.link(lambda m: state["email"] in (m["To"] or "") and "password" in (m["Subject"] or "").lower(),
                           rf"{re.escape(desktop.base)}/accounts/password/reset/key/[^\s\"<>]+",
                           f"resetting the password of {state['email']}")
        page.goto(link)
        page.wait_for_load_state("load")
        desktop.check("set new password", axe=True)
        page.get_by_label(label("New password")).fill(NEW_PASSWORD)
        page.get_by_label(label("New password (again)")).fill(NEW_PASSWORD)
        navigate(page, page.get_by_role("button", name=re.compile("change password", re.I)))
        desktop.check("password changed")
        desktop.goto("/accounts/login/", "sign-in again")
        page.get_by_label(label("Email")).fill(state["email"])
        page.get_by_label(label("Password")).fill(PASSWORD)
        navigate(page, page.get_by_role("button", name="Sign in", exact=True))
        assert "/accounts/login/" in page.url, "the old password still signs in after the reset"
        page.get_by_label(label("Password")).fill(NEW_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(desktop.url("/"), timeout=WAIT_MS)
        open_menu(page)
        expect()(page.locator("header").get_by_role("button", name="Sign out")).to_be_visible()
    desktop.assert_layout("step 6")


def test_7_main_pages_screenshots_and_accessibility(desktop, state, axe_script, screenshot_dir):
    need(state, "address", "email_url", "domain_url")
    page = desktop.page
    page.goto(desktop.url("/"))
    if "/accounts/login/" in page.url:
        pytest.skip("not signed in (step 6 failed)")
    pages = {"overview": "/", "inbox": "/mail/", "conversation": state["email_url"], "compose": "/mail/compose/",
             "drafts": "/mail/drafts/", "search": f"/mail/search/?q={BODY_WORD}", "domain checklist": state["domain_url"],
             "developers": "/settings/developers/", "webhooks": "/settings/webhooks/", "plan": "/settings/plan",
             "security": "/settings/security/"}
    assert list(pages) == MAIN_PAGES
    desktop.violations = [v for v in desktop.violations if v["page"] not in pages]  # each main page once, below
    failures = []
    for name, path in pages.items():
        try:
            desktop.goto(path.replace(desktop.base, ""), name, shot=True, axe=True)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    print(f"\n[e2e] screenshots of {', '.join(pages)} in {screenshot_dir}")
    assert not failures, "main pages that did not render:\n" + "\n".join(failures)
    if axe_script[0] is None:
        pytest.skip(f"accessibility not checked: {axe_script[1]}")
    _report_axe(desktop.violations)
    bad = [v for v in desktop.violations if v["impact"] in ("serious", "critical")]
    assert not bad, "axe-core found serious/critical violations:\n" + "\n".join(
        f"  {v['page']} ({v['url']}): {v['id']} [{v['impact']}] {v['help']}; {v['nodes']} node(s), first {v['target']}: {v['html']}"
        for v in bad)
    desktop.assert_layout("main pages")


def _report_axe(violations):
    if violations:
        print("\n[e2e] axe findings (all impacts):")
        for v in violations:
            print(f"  {v['page']}: {v['id']} [{v['impact']}] {v['nodes']} node(s), first {v['target']}")
    else:
        print("\n[e2e] axe: no violations on the pages checked")


def test_8_the_same_walk_on_a_390px_screen(browser, server, screenshot_dir, state):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    phone = Walker(page=page, server=server, shots=screenshot_dir, axe_path=None, width=390, prefix="390-")
    failures = []

    def stage(name, action, *needs):
        missing = [key for key in needs if key not in phone_state]
        if missing:
            failures.append(f"{name}: not walked (an earlier stage failed)")
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - every stage's failure is reported, then the walk goes on
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:1500]}")

    phone_state = {}
    subject = f"Pocket news {RUN}"

    def signup():
        sign_up_and_confirm(phone, f"pocket-{RUN}@example.org", "Pocket Walker")
        phone_state["signed_up"] = True

    def domain():
        phone_state["domain_url"] = add_domain(phone, "pocket.example")

    def verify():
        page.goto(phone_state["domain_url"])
        publish_and_verify(phone, server.dns)
        phone_state["address"] = create_mailbox(phone, "hi", "pocket.example")

    def live():
        live_mail(phone, phone_state["address"], subject, f"A {BODY_WORD} for the road.\n", (FILENAME, b"Nothing else.\n"))
        phone_state["email_url"] = open_conversation(phone, subject, BODY_WORD, FILENAME)

    def other_pages():
        for name, path in {"developers": "/settings/developers/", "webhooks": "/settings/webhooks/",
                           "plan": "/settings/plan", "security": "/settings/security/"}.items():
            phone.goto(path, name, shot=True)

    try:
        with _timed(state, "8 the 390 px walk"):
            stage("sign up", signup)
            stage("add domain", domain, "signed_up")
            stage("verify + mailbox", verify, "domain_url")
            stage("live mail + conversation", live, "address")
            stage("reply", lambda: reply(phone, phone_state["email_url"], subject, "alice@outside.example"), "email_url")
            stage("draft", lambda: draft_autosave(phone, phone_state["address"], f"Pocket draft {RUN}", "Typed on a phone."),
                  "address")
            stage("search", lambda: search_until_found(phone, BODY_WORD, phone_state["email_url"], "search"), "email_url")
            stage("search by attachment name",
                  lambda: search_until_found(phone, FILENAME, phone_state["email_url"], "search by attachment name"), "email_url")
            stage("trash + restore", lambda: trash_and_restore(phone, phone_state["email_url"], subject), "email_url")
            stage("settings pages", other_pages, "signed_up")
        widest = max((w for _, _, w in phone.visited), default=0)
        print(f"\n[e2e] 390 px: {len(phone.visited)} pages checked, widest {widest} px")
        layout = [f"  {name} ({url}): {what}" for name, url, what in phone.layout]
        assert not failures and not layout, "the 390 px walk:\n" + "\n".join(
            [f"  {failure}" for failure in failures] + (["layout:"] + layout if layout else []))
    finally:
        context.close()


TIMED_STEPS = ["1 sign-up + domain", "2 verify + mailbox", "3a live mail + conversation", "3b reply", "3c forward",
               "3d draft", "4 search, trash, restore", "5 developers + MCP", "6 password reset", "8 the 390 px walk"]


def test_9_every_step_finished_in_order_in_this_process(state):
    """The steps build on each other in one browser and one server (module fixtures): they must all run, in
    order, in one process (under xdist the file is one group, tests/conftest.py). Prints their timings."""
    finished = list(state["timings"])
    state["timings"]["total (module)"] = round(time.monotonic() - STARTED, 1)
    print("\n[e2e] timings (s): " + ", ".join(f"{name} {seconds}" for name, seconds in state["timings"].items()))
    assert finished == TIMED_STEPS
