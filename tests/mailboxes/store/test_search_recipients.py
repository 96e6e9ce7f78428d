"""The search `to` filter matches recipients' names and addresses (To and Cc), never the JSON around them."""

import importlib

import pytest
from django.apps import apps as global_apps

from mailboxes.models import Email
from mailboxes.store.search import email_search
from tests.mailboxes.outbound_helpers import receive


def _subjects(page):
    return sorted(e.subject for e in page.items)


@pytest.fixture
def addressed(owner, mailbox):
    receive(mailbox, subject="to bob", to="Bob Stone <bob@example.com>")
    receive(mailbox, subject="to juergen", to="=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>")
    receive(mailbox, subject="cc strasse", to="owner@example.org", text="x")
    Email.objects.filter(subject="cc strasse").update(cc=[{"address": "post@example.at", "name": "Hauptstraße"}])
    # The update skipped ingest, so fill the column the way the migration's backfill does.
    backfill = importlib.import_module("mailboxes.migrations.0007_email_recipients_text").backfill
    backfill(global_apps, None)


@pytest.mark.parametrize("needle", ["address", "name", '"', "{", ":", "[", ", "])
def test_json_key_names_and_punctuation_match_nothing(owner, addressed, needle):
    assert email_search(account=owner, query="", to=needle).items == []


def test_a_key_name_matches_when_a_recipient_really_contains_it(owner, mailbox, addressed):
    receive(mailbox, subject="real", to='"Name Server" <address-book@example.com>')
    assert _subjects(email_search(account=owner, query="", to="address")) == ["real"]
    assert _subjects(email_search(account=owner, query="", to="name")) == ["real"]


@pytest.mark.parametrize("needle", ["jürgen", "JÜRGEN", "Jürgen Müller", "müller", "jm@example"])
def test_non_ascii_names_match_in_any_case(owner, addressed, needle):
    assert _subjects(email_search(account=owner, query="", to=needle)) == ["to juergen"]


@pytest.mark.parametrize("needle", ["bob@", "example.com", "BOB@EXAMPLE.COM", "stone", "  Bob   Stone  "])
def test_partial_addresses_and_names_match(owner, addressed, needle):
    assert _subjects(email_search(account=owner, query="", to=needle)) == ["to bob"]


def test_cc_recipients_match_and_casefolding_equates_sharp_s(owner, addressed):
    assert _subjects(email_search(account=owner, query="", to="HAUPTSTRASSE")) == ["cc strasse"]
    assert _subjects(email_search(account=owner, query="", to="post@example.at")) == ["cc strasse"]


def test_a_match_never_spans_two_recipients_or_a_name_and_its_address(owner, addressed):
    assert email_search(account=owner, query="", to="stone bob@").items == []
    assert email_search(account=owner, query="", to="%").items == []


def test_to_filter_combines_with_a_text_query(owner, addressed):
    assert _subjects(email_search(account=owner, query="hi", to="jürgen")) == ["to juergen"]
