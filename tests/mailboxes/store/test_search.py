from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from mailboxes.store.services import email_purge, email_trash, email_update
from mailboxes.models import Email
from mailboxes.store.search import email_search, search_index_email
from mailboxes.services import mailbox_create
from core.errors import Invalid
from tests.mailboxes.outbound_helpers import receive


def _subjects(page):
    return sorted(e.subject for e in page.items)


@pytest.fixture
def corpus(mailbox, owner, verified_domain, eager_tasks, django_capture_on_commit_callbacks):
    second = mailbox_create(account=owner, domain=verified_domain, local_part="sales")
    receive(mailbox, subject="Invoice March", sender="Billing <billing@vendor.example>", text="Please pay the invoice.")
    receive(mailbox, subject="Lunch plans", sender="Dana <dana@friends.example>", text="Pizza or sushi on Friday?")
    with django_capture_on_commit_callbacks(execute=True):  # the attachment's text is indexed by the worker
        receive(second, subject="Quarterly report", sender="Eve <eve@corp.example>", text="Numbers attached.",
                attachments=[("report.txt", "text/plain", b"revenue grew in the northern territories")])
    receive(second, subject="Invoice April", sender="Billing <billing@vendor.example>", text="Second invoice, overdue.",
            to="sales@brand.example")
    return {"inbox": mailbox, "second": second}


def test_search_spans_all_mailboxes_over_subject_sender_body_and_attachments(owner, corpus):
    assert _subjects(email_search(account=owner, query="invoice")) == ["Invoice April", "Invoice March"]
    assert _subjects(email_search(account=owner, query="sushi")) == ["Lunch plans"]
    assert _subjects(email_search(account=owner, query="dana")) == ["Lunch plans"]
    assert _subjects(email_search(account=owner, query="territories")) == ["Quarterly report"]


def test_websearch_syntax_phrase_exclude_or(owner, corpus):
    assert _subjects(email_search(account=owner, query='"pay the invoice"')) == ["Invoice March"]
    assert _subjects(email_search(account=owner, query="invoice -overdue")) == ["Invoice March"]
    assert _subjects(email_search(account=owner, query="sushi OR revenue")) == ["Lunch plans", "Quarterly report"]
    assert _subjects(email_search(account=owner, query="-invoice")) == ["Lunch plans", "Quarterly report"]


def test_filters(owner, corpus):
    second = corpus["second"]
    assert _subjects(email_search(account=owner, query="invoice", mailbox=second.id)) == ["Invoice April"]
    assert _subjects(email_search(account=owner, query="", from_="vendor.example")) == ["Invoice April", "Invoice March"]
    assert _subjects(email_search(account=owner, query="invoice", to="sales@brand")) == ["Invoice April"]
    assert _subjects(email_search(account=owner, query="", has_attachment=True)) == ["Quarterly report"]
    march = Email.objects.get(subject="Invoice March")
    email_update(email=march, is_read=True)
    assert _subjects(email_search(account=owner, query="invoice", unread=True)) == ["Invoice April"]
    assert _subjects(email_search(account=owner, query="invoice", folder="INBOX", unread=False)) == ["Invoice March"]
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    assert email_search(account=owner, query="invoice", date_from=tomorrow.isoformat()).items == []
    assert len(email_search(account=owner, query="invoice", date_to=tomorrow).items) == 2
    with pytest.raises(Invalid):
        email_search(account=owner, query="x", date_from="yesterday")
    with pytest.raises(Invalid):
        email_search(account=owner, query="x", folder="BOGUS")


def test_trash_is_left_out_unless_asked_and_purge_unindexes(owner, corpus):
    march = Email.objects.get(subject="Invoice March")
    email_trash(email=march)
    assert _subjects(email_search(account=owner, query="invoice")) == ["Invoice April"]
    assert _subjects(email_search(account=owner, query="invoice", folder="TRASH")) == ["Invoice March"]
    email_purge(email=march)
    assert email_search(account=owner, query="invoice", folder="TRASH").items == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM mailboxes_email_fts_map WHERE email_id = %s", [march.pk.hex])
            assert cursor.fetchone()[0] == 0


def test_reindex_after_text_change(owner, corpus):
    lunch = Email.objects.get(subject="Lunch plans")
    Email.objects.filter(pk=lunch.pk).update(text="Tacos instead")
    lunch.refresh_from_db()
    search_index_email(email=lunch)
    assert _subjects(email_search(account=owner, query="tacos")) == ["Lunch plans"]
    assert email_search(account=owner, query="sushi").items == []


def test_cursor_pages_are_stable_when_new_mail_arrives(owner, mailbox):
    for index in range(7):
        receive(mailbox, subject=f"Status update {index}", text="weekly status")
    first = email_search(account=owner, query="status", limit=3)
    receive(mailbox, subject="Status update late", text="weekly status")
    second = email_search(account=owner, query="status", limit=3, cursor=first.next_cursor)
    third = email_search(account=owner, query="status", limit=3, cursor=second.next_cursor)
    seen = [e.subject for e in first.items + second.items + third.items]
    assert seen == [f"Status update {i}" for i in range(6, -1, -1)]
    assert third.next_cursor is None


HOSTILE = ['"', '""', '"unbalanced', "-", "--", "OR", "OR OR", "a OR", "NEAR(a b)", "subject:x", "*", "^a", "a*",
           "(", ")", "AND", "NOT", "a & b | !c", "'; DROP TABLE mailboxes_email; --", "\x00", "ü\u2028x", "🙂",
           ":", "{a b}", "a:b:c", "-\"x y\"", "\\", "%", "_", "' OR 1=1", "x" * 500]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_error(owner, corpus, query):
    page = email_search(account=owner, query=query)
    assert isinstance(page.items, list)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60))
def test_any_text_is_a_valid_query(owner, corpus, query):
    email_search(account=owner, query=query)


def test_query_length_is_capped(owner):
    with pytest.raises(Invalid):
        email_search(account=owner, query="x" * 501)


@pytest.mark.postgres
def test_postgres_stores_a_weighted_tsvector_with_gin_index(owner, corpus):
    lunch = Email.objects.get(subject="Lunch plans")
    assert lunch.search_vector and "'sushi'" in lunch.search_vector
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'email_search_vector_gin'")
        assert "gin" in cursor.fetchone()[0].lower()
    # Stemming through the english configuration: plural finds singular.
    assert _subjects(email_search(account=owner, query="invoices")) == ["Invoice April", "Invoice March"]



def test_attachment_text_is_searchable_once_extracted_and_a_later_save_keeps_the_entry(
        owner, mailbox, eager_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the extraction task rewrites the entry after commit
        email = receive(mailbox, subject="Minutes", text="See the file.",
                        attachments=[("minutes.txt", "text/plain", b"the heron committee adjourned")])
    email.is_starred = True
    email.save()  # the instance ingest returned: saving it must not drop or corrupt the search entry
    assert _subjects(email_search(account=owner, query="heron")) == ["Minutes"]
    assert _subjects(email_search(account=owner, query="minutes")) == ["Minutes"]


@pytest.mark.postgres
def test_ingest_writes_the_same_search_vector_as_a_reindex(corpus):
    for email in Email.objects.all():
        written_by_ingest = email.search_vector
        search_index_email(email=email)
        email.refresh_from_db(fields=["search_vector"])
        assert email.search_vector == written_by_ingest

@pytest.mark.parametrize("window", [2, 5, 1000])
def test_pages_are_the_same_whichever_phase_answers(owner, mailbox, monkeypatch, window):
    """PostgreSQL looks at the newest `window` rows first and falls back to the GIN index; same pages either way."""
    from mailboxes.store.search import postgres

    monkeypatch.setattr(postgres, "RECENT_WINDOW", window)
    for index in range(9):
        receive(mailbox, subject=f"Note {index}", text="harbor crane" if index % 3 else "unrelated words")
    expected = [f"Note {i}" for i in (8, 7, 5, 4, 2, 1)]
    for limit in (1, 2, 4, 50):
        seen, cursor = [], None
        while True:
            page = email_search(account=owner, query="harbor", limit=limit, cursor=cursor)
            seen += [e.subject for e in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected
    assert email_search(account=owner, query="harbor -crane").items == []


NEGATION_BOMBS = ["-" * 33 + "x", "- " * 40 + "x", "x " + "-" * 400 + "y", "-" * 499]


@pytest.mark.parametrize("query", NEGATION_BOMBS)
def test_a_pile_of_negations_is_one_negation_never_a_500(client, owner, corpus, query):
    """PostgreSQL's tsquery stack overflowed at 33 minus signs ("tsquery stack too small", a 500)."""
    client.force_login(owner.users.get())
    response = client.get("/mail/search/", {"q": query})
    assert response.status_code == 200
    email_search(account=owner, query=query)


def test_too_many_terms_is_a_clear_400(client, owner, corpus):
    client.force_login(owner.users.get())
    response = client.get("/mail/search/", {"q": " ".join(["word"] * 40)})
    assert response.status_code == 400 and "at most 32 words" in response.content.decode()


@pytest.mark.postgres
def test_a_query_postgres_finds_too_complex_is_invalid_and_the_transaction_survives(owner, corpus):
    from django.db import transaction

    from mailboxes.store.search import postgres

    scope = Email.objects.filter(account=owner)
    with transaction.atomic():
        with pytest.raises(Invalid):
            postgres.search_page(scope=scope, query="-" * 40 + "x", cursor=None, limit=5)
        assert Email.objects.filter(account=owner).exists()  # the outer transaction is still usable
