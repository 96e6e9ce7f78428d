"""Attachment names are searchable: through the selector, the dashboard's search page and the REST search,
for new mail and (by the 0011 migration's backfill) for mail stored before, never across accounts."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.db import connection

from mailboxes.models import Email
from mailboxes.store.search import email_search, search_document, search_index_document, search_index_email
from mailboxes.store.search.index import (MAX_INDEXED_ATTACHMENT_NAMES, MAX_INDEXED_CHARS, MAX_INDEXED_NAME_CHARS,
                                          attachment_names_text)
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.mailboxes.outbound_helpers import receive

INVOICE = ("Q3-invoice-ACME.pdf", "application/pdf", b"not really a pdf")


def _subjects(page):
    return sorted(e.subject for e in page.items)


@pytest.fixture
def invoices(owner, outsider, mailbox, other_mailbox):
    """The owner's and the outsider's mail with the same attachment; neither says "invoice" anywhere else."""
    mine = receive(mailbox, subject="Documents for you", text="See the file.", attachments=[INVOICE])
    receive(mailbox, subject="Lunch", text="Pizza on Friday?")
    theirs = receive(other_mailbox, subject="Outsider documents", text="Attached.", attachments=[INVOICE])
    return {"mine": mine, "theirs": theirs}


@pytest.mark.parametrize("query", ["invoice", "Q3-invoice-ACME.pdf", "acme", "Q3-invoice-ACME", '"invoice ACME"',
                                   "INVOICE pdf"])
def test_the_selector_finds_mail_by_attachment_name_in_the_own_account_only(owner, outsider, invoices, query):
    assert [e.id for e in email_search(account=owner, query=query).items] == [invoices["mine"].id]
    assert [e.id for e in email_search(account=outsider, query=query).items] == [invoices["theirs"].id]


def test_excluding_an_attachment_name_leaves_that_mail_out(owner, invoices):
    assert _subjects(email_search(account=owner, query="-invoice")) == ["Lunch"]
    assert _subjects(email_search(account=owner, query="", has_attachment=True)) == ["Documents for you"]


@pytest.mark.parametrize("query", ["invoice", "Q3-invoice-ACME.pdf"])
def test_the_dashboard_search_page_finds_mail_by_attachment_name(client, owner, invoices, query):
    client.force_login(owner.users.get())
    response = client.get("/mail/search/", {"q": query})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Documents for you" in page and str(invoices["mine"].id) in page
    assert "Outsider documents" not in page and str(invoices["theirs"].id) not in page and "Lunch" not in page


@pytest.mark.parametrize("query", ["invoice", "Q3-invoice-ACME.pdf"])
def test_the_rest_search_finds_mail_by_attachment_name(client, owner, outsider, invoices, query):
    search = registry()["qmailing_search_emails"]
    mine = call(client, search, token=token_for(owner, scopes="email:read"), args={"query": query})
    assert mine.status_code == 200
    assert [item["id"] for item in mine.json()["items"]] == [str(invoices["mine"].id)]
    theirs = call(client, search, token=token_for(outsider, scopes="email:read"), args={"query": query})
    assert [item["id"] for item in theirs.json()["items"]] == [str(invoices["theirs"].id)]


def test_an_encoded_unicode_name_is_found_as_shown(owner, mailbox):
    email = receive(mailbox, subject="CV", text="Hello.",
                    attachments=[("Lebenslauf Jürgen.pdf", "application/pdf", b"x")])
    assert email.attachments.get().filename == "Lebenslauf Jürgen.pdf"  # sent RFC 2231-encoded, stored decoded
    assert [e.id for e in email_search(account=owner, query="jürgen").items] == [email.id]
    assert [e.id for e in email_search(account=owner, query="lebenslauf").items] == [email.id]


def test_names_survive_the_extraction_rewrite_of_the_entry(owner, mailbox, eager_tasks,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the extraction task rewrites the entry after commit
        email = receive(mailbox, subject="Minutes", text="See the file.",
                        attachments=[("board-minutes-2026.txt", "text/plain", b"the heron committee adjourned")])
    assert [e.id for e in email_search(account=owner, query="heron").items] == [email.id]
    assert [e.id for e in email_search(account=owner, query="board-minutes-2026.txt").items] == [email.id]
    search_index_email(email=email)  # a rewrite from the stored rows keeps them too
    assert [e.id for e in email_search(account=owner, query="board").items] == [email.id]


def test_the_migration_backfills_names_of_mail_stored_before(owner, invoices):
    mine = invoices["mine"]
    # The entry as it was before names were indexed.
    search_index_document(email_id=mine.pk, document=search_document(
        subject=mine.subject, from_name=mine.from_name, from_address=mine.from_address, body=mine.text,
        attachment_texts=[]))
    assert email_search(account=owner, query="invoice").items == []
    migration = importlib.import_module("mailboxes.migrations.0011_search_attachment_names")
    migration.reindex_with_attachment_names(global_apps, SimpleNamespace(connection=connection))
    assert [e.id for e in email_search(account=owner, query="Q3-invoice-ACME.pdf").items] == [mine.id]
    assert [e.id for e in email_search(account=owner, query="documents").items] == [mine.id]  # the rest kept
    if connection.vendor == "postgresql":
        backfilled = Email.objects.get(pk=mine.pk).search_vector
        search_index_email(email=mine)
        assert Email.objects.get(pk=mine.pk).search_vector == backfilled  # the same entry a reindex writes


def test_names_indexed_are_bounded_in_number_and_length():
    names = [f"file-{index:03d}-{'x' * 400}.pdf" for index in range(MAX_INDEXED_ATTACHMENT_NAMES + 20)]
    text = attachment_names_text(names)
    assert "file-000" in text and f"file-{MAX_INDEXED_ATTACHMENT_NAMES - 1:03d}" in text
    assert f"file-{MAX_INDEXED_ATTACHMENT_NAMES:03d}" not in text
    assert all(len(line) <= MAX_INDEXED_NAME_CHARS for line in text.splitlines())
    assert len(text) <= MAX_INDEXED_ATTACHMENT_NAMES * 3 * (MAX_INDEXED_NAME_CHARS + 1)
    document = search_document(subject="", from_name="", from_address="", body="",
                               attachment_texts=["y" * (2 * MAX_INDEXED_CHARS)], attachment_names=names)
    assert len(document["attachments"]) == MAX_INDEXED_CHARS and document["attachments"].startswith("file-000")


def test_hidden_formatting_in_a_name_is_not_indexed():
    # A right-to-left override would make "invoice\u202egpj.exe" look like "invoiceexe.jpg".
    assert "\u202e" not in attachment_names_text(["invoice\u202egpj.exe", "a\nb.txt"])
    assert attachment_names_text(["", None, "   "]) == ""


def test_many_attachments_are_found_by_an_early_name(owner, mailbox):
    attachments = [(f"scan-{index}.txt", "application/octet-stream", b"x") for index in range(60)]
    attachments[3] = ("contract-signed.docx", "application/octet-stream", b"x")
    email = receive(mailbox, subject="Scans", text="All of them.", attachments=attachments)
    assert [e.id for e in email_search(account=owner, query="contract").items] == [email.id]
