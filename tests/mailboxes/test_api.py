"""The mailbox operations over REST, as an agent with a token uses them (curl-like happy paths and their errors)."""

import pytest

from mailboxes.services import mailbox_create
from mailboxes.store.operations import DEFAULT_TEXT_CHARS
from agent.operations import registry
from tests.api_helpers import call, token_for


@pytest.fixture
def op():
    return registry().__getitem__


@pytest.fixture
def token(owner):
    return token_for(owner, scopes="mailbox:read mailbox:write domain:read")


def _shared_mailbox(account, local_part):
    from domains.services import shared_domain_get

    return mailbox_create(account=account, domain=shared_domain_get(), local_part=local_part)


def test_list_mailboxes_pages_by_address_with_a_cursor(client, owner, outsider, token, op):
    # Created out of address order, so neither newest nor oldest first could pass for it.
    for local_part in ("zulu-box", "alpha-box", "mike-box"):
        _shared_mailbox(owner, local_part)
    _shared_mailbox(outsider, "bravo-box")
    expected = [m.address for m in sorted(owner.mailboxes.select_related("domain"),
                                          key=lambda m: (m.domain.name, m.local_part))]
    assert len(expected) == 4
    seen, cursor = [], None
    while True:
        response = call(client, op("qmailing_list_mailboxes"), token=token,
                        args={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
        page = response.json()
        seen.append([m["address"] for m in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [expected[:3], expected[3:]]
    assert set(page["items"][0]) == {"id", "address", "display_name", "domain_id", "status", "message_count",
                                     "unread_count", "storage_used_bytes", "forwarding_addresses", "forward_keep_copy",
                                     "created_at"}


def test_list_mailboxes_cursor_is_opaque_and_stable(client, owner, token, op):
    for local_part in ("bravo-box", "delta-box", "echo-box"):
        _shared_mailbox(owner, local_part)
    def by_address():
        return [(m.domain.name, m.local_part) for m in sorted(owner.mailboxes.select_related("domain"),
                                                              key=lambda m: (m.domain.name, m.local_part))]

    first = call(client, op("qmailing_list_mailboxes"), token=token, args={"limit": 2}).json()
    last_seen = by_address()[1]
    assert [m["address"] for m in first["items"]] == [f"{local}@{domain}" for domain, local in by_address()[:2]]
    # A mailbox added before the cursor's position does not shift the next page (keyset, not offset).
    _shared_mailbox(owner, "alpha-box")
    rest = call(client, op("qmailing_list_mailboxes"), token=token, args={"limit": 2, "cursor": first["next_cursor"]})
    assert [m["address"] for m in rest.json()["items"]] == [
        f"{local}@{domain}" for domain, local in by_address() if (domain, local) > last_seen][:2]
    # A cursor of a time-ordered list (emails, events) is not a mailbox cursor.
    from core.pagination import cursor_encode
    from django.utils import timezone

    foreign = cursor_encode(position=timezone.now(), id=owner.mailboxes.first().id)
    refused = call(client, op("qmailing_list_mailboxes"), token=token, args={"cursor": foreign})
    assert refused.status_code == 400 and "cursor" in refused.json()["errors"]


@pytest.mark.parametrize("args, field", [({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"cursor": "nope"}, "cursor"),
                                         ({"folder": "INBOX"}, "folder")])
def test_list_mailboxes_lists_each_bad_field(client, owner, token, op, args, field):
    response = call(client, op("qmailing_list_mailboxes"), token=token, args=args)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and field in body["errors"]


def test_get_mailbox(client, owner, token, op):
    mailbox = owner.mailboxes.get()
    body = call(client, op("qmailing_get_mailbox"), token=token, args={"mailbox_id": mailbox.id}).json()
    assert body["id"] == str(mailbox.id) and body["address"] == mailbox.address and body["status"] == "active"


def test_get_mailbox_with_a_malformed_id_is_a_validation_error(client, owner, token, op):
    response = call(client, op("qmailing_get_mailbox"), token=token, args={"mailbox_id": "not-a-uuid"})
    assert response.status_code == 400 and "mailbox_id" in response.json()["errors"]


def test_create_mailbox_on_the_shared_domain(client, owner, token, op):
    response = call(client, op("qmailing_create_mailbox"), token=token,
                    args={"local_part": "Ada.Lovelace", "display_name": "Ada Lovelace"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["address"].startswith("ada.lovelace@") and body["display_name"] == "Ada Lovelace"
    assert owner.mailboxes.filter(pk=body["id"]).exists()


def test_create_mailbox_on_a_verified_domain(client, owner, token, op, verified_domain):
    response = call(client, op("qmailing_create_mailbox"), token=token,
                    args={"local_part": "hello", "domain_id": verified_domain.id})
    assert response.status_code == 201, response.content
    assert response.json()["address"] == "hello@brand.example"


def test_create_mailbox_errors_say_what_to_do(client, owner, token, op):
    from domains.services import domain_add

    create = op("qmailing_create_mailbox")
    pending = domain_add(account=owner, name="pending.example")
    response = call(client, create, token=token, args={"local_part": "hello", "domain_id": pending.id})
    assert (response.status_code, response.json()["code"]) == (400, "domain_not_verified")
    call(client, create, token=token, args={"local_part": "taken"})
    response = call(client, create, token=token, args={"local_part": "taken"})
    assert (response.status_code, response.json()["code"]) == (409, "mailbox_exists")
    response = call(client, create, token=token, args={"local_part": "x", "colour": "blue"})
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert response.json()["errors"] == {"colour": ["Extra inputs are not permitted"]}
    response = call(client, create, token=token, args={})
    assert response.json()["errors"] == {"local_part": ["Field required"]}
    owner.plan.max_mailboxes = owner.mailboxes.count()
    owner.plan.save()
    response = call(client, create, token=token, args={"local_part": "one-more"})
    assert (response.status_code, response.json()["code"]) == (402, "plan_limit_reached")


# --- mail

@pytest.fixture
def mail_token(owner):
    return token_for(owner, scopes="email:read")


def _receive(mailbox, **message):
    from mailboxes.inbound.ingest import email_ingest
    from tests.mailboxes.inbound_helpers import make_message

    return email_ingest(mailbox=mailbox, raw=make_message(**message))


def test_list_emails_gives_summaries_newest_first(client, owner, mail_token, op):
    mailbox = owner.mailboxes.get()
    older = _receive(mailbox, subject="First", text="one\n")
    newer = _receive(mailbox, subject="Second", text="two\n",
                     attachments=[("a.txt", "text/plain", b"attached words")])
    list_emails = op("qmailing_list_emails")
    page = call(client, list_emails, token=mail_token, args={"mailbox_id": mailbox.id, "limit": 1}).json()
    item = page["items"][0]
    assert item["id"] == str(newer.id) and item["subject"] == "Second" and item["has_attachments"] is True
    assert item["from"] == {"address": "alice@example.com", "name": "Alice Example"} and item["folder"] == "INBOX"
    assert "text" not in item and "html" not in item
    rest = call(client, list_emails, token=mail_token,
                args={"mailbox_id": mailbox.id, "limit": 1, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in rest["items"]] == [str(older.id)] and rest["next_cursor"] is None
    starred = call(client, list_emails, token=mail_token, args={"mailbox_id": mailbox.id, "folder": "STARRED"}).json()
    assert starred["items"] == []
    response = call(client, list_emails, token=mail_token, args={"mailbox_id": mailbox.id, "folder": "Junk"})
    assert response.status_code == 400 and "folder" in response.json()["errors"]


def test_get_email_caps_text_and_says_how_to_read_on(client, owner, mail_token, op):
    mailbox = owner.mailboxes.get()
    body = "".join(f"line {n:05d} of a long newsletter\n" for n in range(1000))  # ~32,000 characters
    email = _receive(mailbox, subject="Big", text=body, html="<p>Big <a href='https://example.com/x'>link</a></p>")
    get_email = op("qmailing_get_email")
    first = call(client, get_email, token=mail_token, args={"email_id": email.id}).json()
    assert len(first["text"]) == DEFAULT_TEXT_CHARS and first["truncated"] is True
    assert first["next_offset"] == DEFAULT_TEXT_CHARS
    assert first["text_length"] == len(email.text) and first["html"] is None and first["links"] == {}
    assert first["to"][0]["address"] == "owner@example.org" and first["subject"] == "Big"
    assert first["authentication"] == {} and first["is_read"] is False
    last = call(client, get_email, token=mail_token,
                args={"email_id": email.id, "offset": 30000, "max_chars": 100000, "include_html": "true"}).json()
    assert last["text"] == email.text[30000:] and last["truncated"] is False and last["next_offset"] is None
    assert last["html"] == "" and last["html_truncated"] is False  # html is read through the same window
    html = call(client, get_email, token=mail_token, args={"email_id": email.id, "include_html": "true"}).json()
    assert "<a" in html["html"] and html["html_truncated"] is False
    email.refresh_from_db()
    assert email.is_read is False  # reading through the API does not change flags
    too_much = call(client, get_email, token=mail_token, args={"email_id": email.id, "max_chars": 100001})
    assert too_much.status_code == 400 and "max_chars" in too_much.json()["errors"]


def test_get_email_lists_attachment_details(client, owner, mail_token, op):
    email = _receive(owner.mailboxes.get(), attachments=[("notes.txt", "text/plain", b"hello there")])
    body = call(client, op("qmailing_get_email"), token=mail_token, args={"email_id": email.id}).json()
    assert [(a["index"], a["filename"], a["content_type"], a["size"]) for a in body["attachments"]] == [
        (0, "notes.txt", "text/plain", len(b"hello there"))]
