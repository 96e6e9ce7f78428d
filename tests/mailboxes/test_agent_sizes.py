"""What mail costs an agent: the MCP result of get_email, list and search, measured as the client receives it.

The text block is the result's text content (compact JSON of the body); the whole result is the
CallToolResult as JSON (that text plus the structured content). bench/agent_sizes.py prints the same
figures over the real endpoint.
"""

import json
import re

import pytest

from agent import gates
from agent.mcp.tools import run_tool
from agent.operations import registry
from core.pagination import AGENT_DEFAULT_LIMIT
from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Email
from mailboxes.store.operations import CITED_LINKS_CHARS, DEFAULT_TEXT_CHARS, PAGE_SNIPPET_CHARS, cited_links
from tests.api_helpers import token_for
from tests.mailboxes.inbound.inbox import inbox_messages
from tests.mailboxes.inbound.newsletter import newsletter_message
from tests.mailboxes.inbound_helpers import make_message

TEXT_BLOCK_MAX = 10_000  # issue 20: get_email of a 139 KB newsletter, by default
PAGE_TEXT_MAX = 6_000  # a page of 20 list or search results


@pytest.fixture
def actor(owner):
    return gates.authenticate(f"Bearer {token_for(owner)}")


def call(actor, tool, **arguments):
    """(text block, whole result as JSON, body) of one tool call, as the MCP transport answers it."""
    result = run_tool(operation=registry()[tool], actor=actor, arguments=arguments)
    assert result.is_error is False, result.content[0].text
    text = result.content[0].text
    return text, result.model_dump_json(by_alias=True, exclude_none=True), json.loads(text)


def test_newsletter_get_email_by_default_fits_the_agent_budget(actor, mailbox):
    email = email_ingest(mailbox=mailbox, raw=newsletter_message())
    text, whole, body = call(actor, "qmailing_get_email", email_id=str(email.id))
    assert len(text) <= TEXT_BLOCK_MAX and len(whole) <= 2 * TEXT_BLOCK_MAX, (len(text), len(whole))
    assert body == json.loads(text) and body["text_length"] > 4_000
    assert body["text_clean"] is None and body["html"] is None and body["html_truncated"] is None
    # The citations of the text come with their URLs, nearest first, up to the budget; the rest are counted.
    cited = list(dict.fromkeys(re.findall(r"\[(\d+)\]", body["text"])))
    assert list(body["links"]) == cited[:len(body["links"])] and body["links"]
    assert body["links_omitted"] == len(cited) - len(body["links"]) > 0
    assert len(json.dumps(body["links"], separators=(",", ":"))) <= CITED_LINKS_CHARS
    assert all(body["links"][n] == email.links[n] for n in body["links"])
    assert "include_links" in registry()["qmailing_get_email"].output.model_fields["links_omitted"].description

    _, _, everything = call(actor, "qmailing_get_email", email_id=str(email.id), include_links=True)
    assert everything["links"] == email.links and everything["links_omitted"] == 0


def test_text_clean_is_sent_only_when_it_differs_from_text(actor, mailbox):
    plain = email_ingest(mailbox=mailbox, raw=make_message(subject="Plain", text="Just a note.\n"))
    reply = email_ingest(mailbox=mailbox, raw=make_message(subject="Re: Plan", text=(
        "Sounds good, see you then.\n\nOn Mon, Jun 15, 2026 at 9:00 AM Ada <ada@example.com> wrote:\n"
        "> Shall we meet on Thursday?\n> Ada\n")))
    _, _, same = call(actor, "qmailing_get_email", email_id=str(plain.id))
    assert same["text"] == "Just a note." and same["text_clean"] is None and same["text_clean_truncated"] is False
    _, _, different = call(actor, "qmailing_get_email", email_id=str(reply.id))
    assert different["text_clean"] == "Sounds good, see you then." and "> Shall we" in different["text"]
    _, _, read_on = call(actor, "qmailing_get_email", email_id=str(reply.id), offset=5)
    assert read_on["text_clean"] is None  # already given with the start of the text
    # Quoted history past what is returned: the text returned is the sender's own, text_clean would repeat it.
    long_reply = email_ingest(mailbox=mailbox, raw=make_message(subject="Re: Report", text=(
        "Findings. " * 1000 + "\n\nOn Mon, Jun 15, 2026 at 9:00 AM Ada <ada@example.com> wrote:\n> Send the report?\n")))
    assert long_reply.text_clean != long_reply.text
    _, _, cut = call(actor, "qmailing_get_email", email_id=str(long_reply.id), max_chars=5_000)
    assert cut["text_clean"] is None and cut["text_clean_truncated"] is False and cut["truncated"] is True
    _, _, whole = call(actor, "qmailing_get_email", email_id=str(long_reply.id), max_chars=20_000)
    assert whole["text_clean"] == long_reply.text_clean and "> Send the report?" in whole["text"]


def test_include_html_obeys_max_chars_and_says_it_was_cut(actor, mailbox):
    email = email_ingest(mailbox=mailbox, raw=newsletter_message())
    assert len(email.html) > 100_000
    text, _, body = call(actor, "qmailing_get_email", email_id=str(email.id), include_html=True, max_chars=3_000)
    assert body["html"] == email.html[:3_000] and body["html_truncated"] is True
    assert len(body["text"]) <= 3_000 and len(text) <= 3 * 3_000 + CITED_LINKS_CHARS + 2_000
    _, _, rest = call(actor, "qmailing_get_email", email_id=str(email.id), include_html=True, max_chars=100_000,
                      offset=100_000)
    assert rest["html"] == email.html[100_000:] and rest["html_truncated"] is False
    _, _, small = call(actor, "qmailing_get_email", email_id=str(email.id), include_html=True)
    assert len(small["html"]) == DEFAULT_TEXT_CHARS and small["html_truncated"] is True


def test_cited_links_keep_the_first_citations_within_the_budget():
    links = {str(n): f"https://t.example/{n:03d}/" + "x" * 80 for n in range(1, 40)}
    text = "Read [3] then [1] and [3] again, [7] [2] " + " ".join(f"[{n}]" for n in range(8, 40)) + " [99] [x]"
    chosen, omitted = cited_links(text, links, budget=450)
    assert list(chosen) == ["3", "1", "7", "2"]  # first seen first; [3] once; [99] is no link of the email
    assert omitted == 32  # every other cited link of the email ([4], [5] and [6] are not cited)
    assert cited_links(text, links, budget=0) == ({}, 36)
    assert cited_links("no citations", links) == ({}, 0)


def test_list_and_search_default_to_twenty_and_a_page_fits_the_budget(actor, mailbox):
    assert AGENT_DEFAULT_LIMIT == 20
    for raw in inbox_messages(25):
        email_ingest(mailbox=mailbox, raw=raw)
    listed, _, page = call(actor, "qmailing_list_emails", mailbox_id=str(mailbox.id))
    assert len(page["rows"]) == 20 and page["next_cursor"]
    assert len(listed) <= PAGE_TEXT_MAX, len(listed)
    found, _, results = call(actor, "qmailing_search_emails", query="order OR invoice OR parcel OR review OR sale")
    assert len(results["rows"]) == 20 and len(found) <= PAGE_TEXT_MAX, len(found)
    # The text holds what an agent picks a message by, one row each; the structured content every field.
    assert page["columns"] == ["id", "received_at", "from", "subject", "snippet", "is_read", "has_attachments"]
    newest = Email.objects.filter(mailbox=mailbox).order_by("-received_at", "-id").first()
    row = dict(zip(page["columns"], page["rows"][0]))
    assert row["id"] == str(newest.id) and row["subject"] == newest.subject and row["is_read"] is False
    assert row["from"] == f"{newest.from_name} <{newest.from_address}>" and row["received_at"] == newest.received_at.strftime("%Y-%m-%dT%H:%MZ")
    assert 0 < len(row["snippet"]) <= PAGE_SNIPPET_CHARS and newest.snippet.startswith(row["snippet"].rstrip("…"))
    result = run_tool(operation=registry()["qmailing_list_emails"], actor=actor, arguments={"mailbox_id": str(mailbox.id)})
    assert len(result.structured_content["items"]) == 20 and result.structured_content["items"][0]["thread_id"]
    for name in ("qmailing_list_emails", "qmailing_search_emails", "qmailing_list_threads", "qmailing_list_mailboxes"):
        assert registry()[name].input.model_fields["limit"].default == 20
