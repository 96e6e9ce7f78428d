"""Every dashboard page has a title, exactly one h1, and a label for every form control; a POST form carries
its CSRF token. Checked on the rendered HTML of the main pages, with an account that has mail, a domain,
a draft, a token and a webhook."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tests.mailboxes.outbound_helpers import receive

LABELLED_BY_TYPE = {"hidden", "submit", "button", "reset", "image"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h1 = 0
        self.title = ""
        self._in_title = False
        self.controls = []  # (tag, attrs, inside a <label>)
        self.label_for = set()
        self._label_depth = 0
        self.forms = []  # [method, has csrf]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h1":
            self.h1 += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag == "form":
            self.forms.append([(attrs.get("method") or "get").lower(), False])
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and attrs.get("name") == "csrfmiddlewaretoken" and self.forms:
                self.forms[-1][1] = True
            if not (tag == "input" and (attrs.get("type") or "text") in LABELLED_BY_TYPE):
                self.controls.append((tag, attrs, self._label_depth > 0))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "label":
            self._label_depth -= 1

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def unlabelled(self):
        return [(tag, attrs.get("name") or attrs.get("id")) for tag, attrs, wrapped in self.controls
                if not (wrapped or attrs.get("aria-label") or attrs.get("aria-labelledby")
                        or (attrs.get("id") and attrs["id"] in self.label_for))]


@pytest.fixture
def site(owner, settings):
    from accounts.tokens import token_issue
    from domains.services import domain_add
    from mailboxes.store.drafts import draft_create

    settings.QMAILING_DNS_RESOLVERS = ["127.0.0.1:9"]
    mailbox = owner.mailboxes.get()
    email = receive(mailbox, subject="Manners", html="<p>Hi</p>", attachments=[("a.txt", "text/plain", b"x")])
    domain = domain_add(account=owner, name="manners.example")
    draft = draft_create(account=owner, mailbox=mailbox, subject="Draft manners")
    token_issue(account=owner, user=owner.users.get(), client="cursor", scopes=["mailbox:read"])
    return {"mailbox": mailbox, "email": email, "domain": domain, "draft": draft}


def test_every_main_page_has_a_title_one_h1_and_labelled_controls(client, owner, site):
    client.force_login(owner.users.get())
    urls = [
        reverse("dashboard"), reverse("mail:inbox"), f"{reverse('mail:inbox')}?folder=TRASH",
        reverse("mailboxes:mail", args=[site["mailbox"].id]), reverse("mail:detail", args=[site["email"].id]),
        reverse("mail:compose"), f"{reverse('mail:compose')}?reply={site['email'].id}",
        f"{reverse('mail:compose')}?forward={site['email'].id}", f"{reverse('mail:compose')}?draft={site['draft'].id}",
        reverse("mail:drafts"), reverse("mail:search"), f"{reverse('mail:search')}?q=manners",
        reverse("domains:add"), reverse("domains:detail", args=[site["domain"].id]),
        reverse("mailboxes:create"), reverse("mailboxes:detail", args=[site["mailbox"].id]), reverse("mailboxes:groups"),
        reverse("developers:index"), reverse("webhooks:index"), reverse("plan"), "/no/such/page/",
    ]
    problems = []
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        page = Page()
        page.feed(response.content.decode())
        if page.h1 != 1:
            problems.append(f"{url}: {page.h1} h1 elements")
        if not page.title.strip() or page.title.strip() == "QMailing":
            problems.append(f"{url}: no page title of its own ({page.title.strip()!r})")
        if page.unlabelled():
            problems.append(f"{url}: controls without a label: {page.unlabelled()}")
        if any(method == "post" and not csrf for method, csrf in page.forms):
            problems.append(f"{url}: a POST form without its CSRF token")
    assert not problems, "\n".join(problems)
