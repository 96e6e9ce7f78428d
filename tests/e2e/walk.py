"""The browser walk's helpers: a Walker that drives one signed-in browser page through the product and checks
every page it lands on (a <title>, one <h1>, no server error, on a narrow screen no horizontal scroll), takes
screenshots and runs axe-core; and the steps of the walk, shared by the desktop and the 390 px runs."""

import json
import re
import smtplib
import time
from email.message import EmailMessage

import pytest
import requests

PASSWORD = "correct horse battery 9"
NEW_PASSWORD = "staple lighthouse orbit 42"
WAIT_MS = 15_000  # a page, a redirect, a DNS check
LIVE_WAIT_MS = 25_000  # SMTP → event log → websocket → the page refetches itself (5 s poll with Redis)
AUTOSAVE_WAIT_MS = 8_000  # the page saves 1.5 s after the last keystroke
MCP_VERSION = "2025-06-18"


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def label(text):
    """A form control's label as the templates render it: Django's label_tag adds a colon ("Email:")."""
    return re.compile(rf"^\s*{re.escape(text)}:?\s*$", re.I)


def navigate(page, locator):
    """Click what leads to another page and wait until that page has loaded."""
    with page.expect_navigation(timeout=WAIT_MS):
        locator.click()
    return page


def open_menu(page):
    """On a narrow screen the header's sections and account links fold behind "Menu": unfold them."""
    toggle = page.locator("header").get_by_role("button", name="Menu")
    if toggle.count() and toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
        expect()(toggle).to_have_attribute("aria-expanded", "true")


def header_link(page, name):
    open_menu(page)
    return page.locator("header").get_by_role("link", name=name, exact=True)


def sign_out(page):
    open_menu(page)
    navigate(page, page.locator("header").get_by_role("button", name="Sign out"))


class Walker:
    """One browser page walking the product, with what it found along the way."""

    def __init__(self, *, page, server, shots, axe_path, width=None, prefix="", clipboard=False):
        self.page, self.server, self.base = page, server, server.base
        self.clipboard = clipboard  # the context may read the clipboard (copy buttons are checked)
        self.shots, self.axe_path, self.width, self.prefix = shots, axe_path, width, prefix
        self.layout = []  # (page, what) wrong with the layout
        self.violations = []  # axe findings: dict(page, id, impact, target, help, nodes)
        self.visited = []  # (page name, url, scrollWidth)
        self.timings = {}

    def url(self, path):
        return self.base + path

    def goto(self, path, name, **checks):
        response = self.page.goto(self.url(path))
        assert response is not None and response.status < 400, \
            f"GET {path} ({name}) answered {response.status if response else 'nothing'}: {self.page.title()!r}"
        return self.check(name, **checks)

    def check(self, name, *, shot=False, axe=False):
        """Checks on the page now shown; records layout trouble (asserted at the end of the step)."""
        page = self.page
        page.wait_for_load_state("load")
        title = page.title()
        assert title and "Server Error" not in title and "Traceback" not in title, \
            f"{name} ({page.url}) looks broken: title {title!r}"
        h1 = page.locator("h1").count()
        if h1 != 1:
            self.layout.append((name, page.url, f"{h1} <h1> elements (expected exactly one)"))
        width = page.evaluate("document.documentElement.scrollWidth")
        self.visited.append((name, page.url, width))
        if self.width is not None and width > self.width:
            wide = page.evaluate("""(limit) => Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > limit + 1).slice(-3)
                .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : ''))""", self.width)
            self.layout.append((name, page.url, f"scrollWidth {width} > {self.width} (widest: {wide})"))
        if shot:
            page.screenshot(path=str(self.shots / f"{self.prefix}{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"), full_page=True)
        if axe and self.axe_path is not None:
            self.run_axe(name)
        return page

    def run_axe(self, name):
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(self.axe_path))
        found = page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                                                target: v.nodes.length ? v.nodes[0].target : null,
                                                html: v.nodes.length ? v.nodes[0].html.slice(0, 200) : null}));
        }""")
        for violation in found:
            self.violations.append({"page": name, "url": page.url, **violation})

    def assert_layout(self, step):
        problems = [f"  {name} ({url}): {what}" for name, url, what in self.layout]
        self.layout.clear()
        assert not problems, f"{step}: layout problems on {len(problems)} page(s):\n" + "\n".join(problems)

    def message(self, text):
        """A flash message (templates/base.html .messages)."""
        expect()(self.page.locator("ul.messages")).to_contain_text(text, timeout=WAIT_MS)


# --- steps ---------------------------------------------------------------------------------------------------

def sign_up_and_confirm(walker, email_address, full_name):
    """Sign up, read the verification email from the outbox, open its link, confirm: signed in on the Overview."""
    page, outbox = walker.page, walker.server.outbox
    walker.goto("/accounts/signup/", "sign-up", shot=True, axe=True)
    page.get_by_label(label("Your name")).fill(full_name)
    page.get_by_label(label("Email")).fill(email_address)
    page.get_by_label(label("Password")).fill(PASSWORD)
    navigate(page, page.get_by_role("button", name="Create account"))
    assert "/accounts/signup/" not in page.url, \
        f"sign-up did not go through (still at {page.url}): {page.locator('.errorlist').all_inner_texts()}"
    walker.check("verification sent", axe=True)
    expect()(page.locator("main")).to_contain_text(re.compile("verif|confirm", re.I))
    link = outbox.link(lambda m: email_address in (m["To"] or "") and "confirm" in (m["Subject"] or "").lower(),
                       rf"{re.escape(walker.base)}/accounts/confirm-email/[^\s\"<>]+", f"verifying {email_address}")
    page.goto(link)
    walker.check("confirm email", shot=True, axe=True)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(walker.url("/"), timeout=WAIT_MS)
    walker.check("overview", shot=True, axe=True)
    open_menu(page)
    expect()(page.locator("header").get_by_role("button", name="Sign out")).to_be_visible()
    expect()(page.locator("header")).to_contain_text(email_address)


def add_domain(walker, name):
    """Overview → Add domain → the DNS checklist: one card per record, each with copy buttons for host and value."""
    page = walker.page
    header_link(page, "Add domain").click()
    page.wait_for_url(walker.url("/domains/add/"), timeout=WAIT_MS)
    walker.check("add domain", axe=True)
    page.get_by_label(label("Domain")).fill(name)
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_url(re.compile(re.escape(walker.url("/domains/")) + r"[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    walker.check("domain checklist", shot=True, axe=True)
    expect()(page.get_by_role("heading", level=1)).to_contain_text(name)
    cards = page.locator("section.dns-record")
    expect()(cards).to_have_count(5)
    for kind in ("Ownership", "MX", "SPF", "DKIM", "DMARC"):
        card = page.get_by_role("region", name=re.compile(kind, re.I))
        expect()(card).to_have_count(1)
        expect()(card.get_by_role("button", name=re.compile(r"^Copy the .* host$"))).to_be_visible()
        expect()(card.get_by_role("button", name=re.compile(r"^Copy the .* value$"))).to_be_visible()
    return page.url


def publish_and_verify(walker, dns):
    """Publish what the checklist shows in the test DNS server, press Check now: Verified, every record ok."""
    page = walker.page
    records = page.evaluate("""() => Array.from(document.querySelectorAll('section.dns-record')).map(card => {
        const rows = {};
        card.querySelectorAll('tr').forEach(tr => { rows[tr.querySelector('th').textContent.trim()] = tr.querySelector('td'); });
        return {host: rows['Host'].querySelector('code').textContent.trim(), type: rows['Type'].textContent.trim(),
                value: rows['Value'].querySelector('code').textContent.trim()};
    })""")
    assert len(records) == 5, records
    if walker.clipboard:
        # A copy button puts exactly the value on the clipboard (what a user pastes at the DNS provider).
        card = page.get_by_role("region", name=re.compile("DKIM"))
        card.get_by_role("button", name=re.compile(r"^Copy the .* value$")).click()
        copied = page.evaluate("navigator.clipboard.readText()")
        dkim = next(record["value"] for record in records if record["host"].split(".")[1:2] == ["_domainkey"])
        assert copied == dkim, f"the DKIM value's copy button copied {copied[:80]!r}…, the page shows {dkim[:80]!r}…"
    for record in records:
        if record["type"] == "MX":
            preference, exchange = record["value"].split()
            dns.add(record["host"], "MX", (int(preference), exchange))
        else:
            assert record["type"] == "TXT", record
            dns.add(record["host"], "TXT", record["value"])
    started = time.monotonic()
    navigate(page, page.get_by_role("button", name="Check now"))
    expect()(page.get_by_role("heading", level=1)).to_contain_text("Verified", timeout=WAIT_MS)
    walker.timings["check now"] = round(time.monotonic() - started, 2)
    walker.check("domain verified", shot=True)
    states = page.locator("section.dns-record h3 .badge").all_inner_texts()
    assert all(state.strip().lower() == "ok" for state in states), f"record states after Check now: {states}"


def create_mailbox(walker, local_part, domain):
    page = walker.page
    navigate(page, page.get_by_role("link", name="Create mailbox"))
    walker.check("new mailbox", axe=True)
    page.get_by_label(label("Address")).fill(local_part)
    domain_select = page.get_by_label(label("Domain"))
    domain_select.select_option(label=domain)
    page.get_by_role("button", name="Create mailbox").click()
    address = f"{local_part}@{domain}"
    page.wait_for_url(re.compile(re.escape(walker.url("/mailboxes/")) + r"[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    walker.check("mailbox", axe=True)
    walker.message(f"{address} is ready.")
    expect()(page.get_by_role("heading", level=1)).to_contain_text(address)
    return address


def smtp_send(server, *, to, subject, text, attachment=None, sender="Alice Outside <alice@outside.example>"):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = f"<{time.time_ns()}@outside.example>"
    message.set_content(text)
    if attachment:
        filename, data = attachment
        message.add_attachment(data, maintype="text", subtype="plain", filename=filename)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as client:
        client.send_message(message)


def live_mail(walker, address, subject, body, attachment):
    """With the inbox open, mail arrives over SMTP and shows up without a reload (the /ws/mail/ websocket)."""
    page = walker.page
    walker.goto("/mail/", "inbox")
    expect()(page.locator("html")).to_have_attribute("data-live", "connected", timeout=WAIT_MS)
    page.evaluate("window.__e2eSamePage = 'still here'")
    started = time.monotonic()
    smtp_send(walker.server, to=address, subject=subject, text=body, attachment=attachment)
    row = page.locator("#mail-list li[data-id]", has_text=subject)
    expect()(row).to_have_count(1, timeout=LIVE_WAIT_MS)
    walker.timings["live mail"] = round(time.monotonic() - started, 2)
    assert page.evaluate("window.__e2eSamePage") == "still here", "the inbox reloaded instead of updating live"
    expect()(page.locator("#live-status")).to_contain_text("new email")
    walker.check("inbox", shot=True, axe=True)
    # Keyboard shortcuts: ? shows them, Escape closes.
    page.locator("body").press("?")
    expect()(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect()(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
    return row


def open_conversation(walker, subject, body_word, filename):
    page = walker.page
    page.locator("#mail-list li[data-id]", has_text=subject).get_by_role("link").click()
    page.wait_for_url(re.compile(re.escape(walker.url("/mail/")) + r"[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    walker.check("conversation", shot=True, axe=True)
    expect()(page.get_by_role("heading", level=1)).to_have_text(subject)
    expect()(page.locator("pre.mailtext").first).to_contain_text(body_word)
    expect()(page.get_by_role("list", name="Attachments")).to_contain_text(filename)
    return page.url


def reply(walker, email_url, subject, to):
    """Reply from the conversation: the sent copy joins the thread; outside mail leaves through the outbox."""
    page, outbox = walker.page, walker.server.outbox
    page.goto(email_url)
    navigate(page, page.get_by_role("link", name="Reply", exact=True))
    walker.check("compose reply", shot=True, axe=True)
    expect()(page.get_by_role("heading", level=1)).to_contain_text(f"Reply to “{subject}”")
    expect()(page.get_by_label(label("To"))).to_have_value(re.compile(re.escape(to)))
    expect()(page.get_by_label(label("Subject"))).to_have_value(f"Re: {subject}")
    message = page.get_by_label(label("Message"))
    message.press("Control+Home")
    message.press_sequentially("Thanks, the reply works. ")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(re.compile(re.escape(walker.url("/mail/")) + r"[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    walker.check("sent reply")
    walker.message("Sent.")
    expect()(page.locator("main")).to_contain_text("2 messages in this conversation.")
    sent = outbox.wait_for(lambda m: to in (m["To"] or "") and (m["Subject"] or "") == f"Re: {subject}",
                           f"the reply to {to}")
    assert "Thanks, the reply works." in outbox.text(sent)
    assert sent["In-Reply-To"], "the reply carries no In-Reply-To"


def reply_all_page(walker, email_url, subject, to):
    """Reply all (?reply=…&all=1) opens addressed to the sender (our own address left out)."""
    page = walker.page
    page.goto(email_url)
    navigate(page, page.get_by_role("link", name="Reply all", exact=True))
    assert "all=1" in page.url, page.url
    walker.check("compose reply all")
    expect()(page.get_by_role("heading", level=1)).to_contain_text(f"Reply to all on “{subject}”")
    expect()(page.get_by_label(label("To"))).to_have_value(re.compile(re.escape(to)))


def forward(walker, email_url, subject, to):
    page, outbox = walker.page, walker.server.outbox
    page.goto(email_url)
    navigate(page, page.get_by_role("link", name="Forward", exact=True))
    walker.check("compose forward", axe=True)
    expect()(page.get_by_role("heading", level=1)).to_contain_text(f"Forward “{subject}”")
    page.get_by_label(label("To")).fill(to)
    page.get_by_label(label("Note")).fill("Forwarding this one to you.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(re.compile(re.escape(walker.url("/mail/")) + r"[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    walker.message("Sent.")
    sent = outbox.wait_for(lambda m: to in (m["To"] or "") and subject in (m["Subject"] or ""), f"the forward to {to}")
    assert "Forwarding this one to you." in outbox.text(sent)
    assert (sent["Subject"] or "").lower().startswith("fwd"), sent["Subject"]


def draft_autosave(walker, sender, subject, text):
    """Compose, type, wait for "Draft saved", go to Drafts, open it: the text is there."""
    page = walker.page
    sidebar(page).get_by_role("link", name="Compose", exact=True).click()
    page.wait_for_url(re.compile(re.escape(walker.url("/mail/compose/"))), timeout=WAIT_MS)
    walker.check("compose", shot=True, axe=True)
    expect()(page.get_by_role("heading", level=1)).to_have_text("New message")
    page.get_by_label(label("From")).select_option(label=sender)
    page.get_by_label(label("To")).fill("carol@outside.example")
    page.get_by_label(label("Subject")).fill(subject)
    page.get_by_label(label("Message")).press_sequentially(text)
    autosave_error = None
    try:
        expect()(page.locator("#autosave-status")).to_contain_text("Draft saved", timeout=AUTOSAVE_WAIT_MS)
        assert "draft=" in page.url, f"the address does not name the saved draft: {page.url}"
    except AssertionError as exc:
        # Go on with the "Save draft" button, so Drafts and resuming are still walked; fail at the end.
        autosave_error = (f"autosave on {page.url} did not save: #autosave-status says "
                          f"{page.locator('#autosave-status').inner_text()!r} ({str(exc).splitlines()[0]})")
        navigate(page, page.get_by_role("button", name="Save draft"))
        walker.message("Draft saved.")
    navigate(page, sidebar(page).get_by_role("link", name=re.compile(r"^Drafts\b")))
    assert page.url == walker.url("/mail/drafts/"), page.url
    walker.check("drafts", shot=True, axe=True)
    navigate(page, page.get_by_role("link", name=re.compile(re.escape(subject))))
    walker.check("resume draft")
    expect()(page.get_by_role("heading", level=1)).to_have_text("Resume draft")
    expect()(page.get_by_label(label("Subject"))).to_have_value(subject)
    expect()(page.get_by_label(label("Message"))).to_have_value(text)
    expect()(page.get_by_label(label("To"))).to_have_value("carol@outside.example")
    assert autosave_error is None, autosave_error + " (saving with the button and resuming from Drafts worked)"


def email_id(email_url):
    return email_url.rstrip("/").rsplit("/", 1)[-1]


def search(walker, query, email_url, name):
    """Search mail (sidebar → Search) for `query`: the email at `email_url` is among the results."""
    page = walker.page
    navigate(page, sidebar(page).get_by_role("link", name=re.compile(r"^Search\b")))
    assert page.url == walker.url("/mail/search/"), page.url
    page.get_by_role("searchbox", name="Search").fill(query)
    navigate(page, page.get_by_role("button", name="Search", exact=True))
    walker.check(name, shot=True, axe=True)
    results = page.locator("#mail-list li[data-id]")
    found = page.locator(f'#mail-list li[data-id="{email_id(email_url)}"]')
    if found.count() != 1:
        raise AssertionError(f"searching {query!r} ({page.url}) did not find {email_url}; results: "
                             f"{[text.splitlines()[0] if text else text for text in results.all_inner_texts()]}")


def search_until_found(walker, query, email_url, name, timeout=10):
    """Search; attachment text is indexed a moment after arrival, so a miss is retried briefly."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return search(walker, query, email_url, name)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def trash_and_restore(walker, email_url, subject):
    """Trash from the email page; in Trash, tick it and Restore from the bulk toolbar; it is back in the Inbox."""
    page = walker.page
    rows = page.locator(f'#mail-list li[data-id="{email_id(email_url)}"]')
    page.goto(email_url)
    navigate(page, page.locator(".actions").get_by_role("button", name="Trash", exact=True))
    walker.message("Moved to Trash.")
    navigate(page, sidebar(page).get_by_role("link", name=re.compile(r"^Inbox\b")))
    expect()(rows, message="a trashed email left the Inbox").to_have_count(0)
    navigate(page, sidebar(page).get_by_role("link", name=re.compile(r"^Trash\b")))
    walker.check("trash", axe=True)
    expect()(rows, message="the trashed email is in Trash").to_have_count(1)
    rows.get_by_role("checkbox", name=subject, exact=True).check()
    navigate(page, page.get_by_role("toolbar", name="Actions on selected emails").get_by_role("button", name="Restore"))
    walker.message("Restored.")
    expect()(rows, message="a restored email left Trash").to_have_count(0)
    navigate(page, sidebar(page).get_by_role("link", name=re.compile(r"^Inbox\b")))
    expect()(rows, message="the restored email is back in the Inbox").to_have_count(1)


def sidebar(page):
    return page.get_by_role("navigation", name="Mailboxes and folders")


# --- MCP -----------------------------------------------------------------------------------------------------

def _sse_or_json(response):
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        messages = []
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                messages.append(json.loads(line[5:]))
        return messages
    return [response.json()] if response.content else []


def mcp(url, message, *, token, session=None):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": f"Bearer {token}", "MCP-Protocol-Version": MCP_VERSION}
    if session:
        headers["Mcp-Session-Id"] = session
    response = requests.post(url, json=message, headers=headers, timeout=30)
    replies = [m for m in _sse_or_json(response) if m.get("id") == message.get("id")] \
        if response.status_code == 200 and "id" in message else []
    return response, (replies[0] if replies else None)


def mcp_list_mailboxes(base, token):
    """initialize, notifications/initialized, tools/call qmailing_list_mailboxes: (status, reply, session)."""
    url = f"{base}/mcp"
    response, reply = mcp(url, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                "params": {"protocolVersion": MCP_VERSION, "capabilities": {},
                                           "clientInfo": {"name": "qmailing-e2e", "version": "1"}}}, token=token)
    if response.status_code != 200:
        return response.status_code, response.text, None
    assert reply and reply["result"]["protocolVersion"] == MCP_VERSION, reply
    session = response.headers.get("Mcp-Session-Id")
    notified, _ = mcp(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token, session=session)
    assert notified.status_code == 202, (notified.status_code, notified.text)
    called, reply = mcp(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                              "params": {"name": "qmailing_list_mailboxes", "arguments": {}}}, token=token, session=session)
    return called.status_code, reply, session


def need(state, *keys):
    missing = [key for key in keys if key not in state]
    if missing:
        pytest.skip(f"an earlier step failed, so there is no {', '.join(missing)}")
