"""Hostile date-times: Date headers are stored as date=None with a defect (the message is always kept);
forged cursors and out-of-range search bounds are Invalid, never a server error."""

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from mailboxes.inbound.ingest import email_ingest
from mailboxes.store.selectors import email_list, thread_list
from mailboxes.models import Email
from mailboxes.inbound.parsing import MAX_DATE_YEAR, MIN_DATE_YEAR
from mailboxes.store.search import email_search
from core.errors import Invalid


def with_date(date: bytes | None) -> bytes:
    header = b"" if date is None else b"Date: " + date + b"\r\n"
    return (b"From: a@example.com\r\nTo: owner@example.org\r\nSubject: dated\r\n" + header +
            b"Message-ID: <dated@example.com>\r\n\r\nbody\r\n")


def stored(mailbox, raw):
    """Ingest, then read the row back so the value the database holds is the one checked."""
    email = Email.objects.get(pk=email_ingest(mailbox=mailbox, raw=raw).pk)
    with email.raw.open("rb") as handle:
        assert handle.read() == raw
    return email


def assert_sane(date):
    if date is not None:
        assert date.utcoffset() == timedelta(0)
        assert MIN_DATE_YEAR <= date.year <= MAX_DATE_YEAR


HOSTILE_DATES = [
    b"Tue, 02 Jan 2024 10:00:00 +1600",  # PostgreSQL: time zone displacement out of range
    b"Tue, 02 Jan 2024 10:00:00 -1500",
    b"Mon, 01 Jan 2001 00:00:00 +2359",
    b"Tue, 02 Jan 2024 10:00:00 +9959",
    b"Fri, 31 Dec 9999 23:59:59 -0100",  # OverflowError when made UTC
    b"Fri, 31 Dec 9999 23:59:59 +0000",
    b"Sat, 01 Jan 10000 00:00:00 +0000",
    b"Mon, 01 Jan 0999 00:00:00 +0000",
    b"Mon, 01 Jan 1899 00:00:00 +0000",
    b"Mon, 1 Jan 99999999999999999999 10:00:00 +0000",
    b"Mon, 99999999999999999999 Jan 2024 10:00:00 +0000",
    b"Mon, 1 Jan 2024 99999999999999:00:00 +0000",
    b"Mon, 1 Jan 2024 10:00:00 +99999999999999999",
    b"garbage",
    b"",
    b"   ",
    b"\xff\xfe\x00",
]


@pytest.mark.parametrize("date", HOSTILE_DATES)
def test_hostile_date_headers_store_the_message_with_no_date_and_a_defect(mailbox, date):
    email = stored(mailbox, with_date(date))
    assert email.date is None
    if date.strip():
        assert any(d.startswith("InvalidDateDefect") for d in email.defects)


@pytest.mark.parametrize("date, expected", [
    (b"Tue, 02 Jan 2024 10:00:00 +1400", "2024-01-01T20:00:00+00:00"),
    (b"Tue, 02 Jan 2024 10:00:00 -1200", "2024-01-02T22:00:00+00:00"),
    (b"Mon, 1 Jan 24 10:00:00 +0000", "2024-01-01T10:00:00+00:00"),
    (b"Mon, 1 Jan 99 10:00:00 -0000", "1999-01-01T10:00:00+00:00"),
    (b"Fri, 31 Dec 9998 23:59:59 +0100", "9998-12-31T22:59:59+00:00"),
    (b"Mon, 01 Jan 0001 00:00:00 +0000", "2001-01-01T00:00:00+00:00"),  # the stdlib reads any year < 100 as two digits
])
def test_valid_dates_are_stored_in_utc(mailbox, date, expected):
    email = stored(mailbox, with_date(date))
    assert email.date.astimezone(timezone.utc).isoformat() == expected
    assert not any(d.startswith("InvalidDateDefect") for d in email.defects)


def test_a_missing_date_header_is_not_a_defect(mailbox):
    email = stored(mailbox, with_date(None))
    assert email.date is None and email.defects == []


def test_an_import_sorting_by_a_hostile_date_falls_back_to_the_time_of_storing(mailbox):
    before = dj_timezone.now()
    email = Email.objects.get(pk=email_ingest(mailbox=mailbox, raw=with_date(b"Mon, 01 Jan 2024 00:00:00 +2000"),
                                              imported=True).pk)
    assert email.date is None and email.received_at >= before


_DAYS = st.sampled_from(["Mon, ", "Sun, ", "Xyz, ", ""])
_MONTHS = st.sampled_from(["Jan", "Feb", "Dec", "jan", "Foo"])
_ZONES = st.one_of(
    st.builds(lambda sign, hours, minutes: f"{sign}{hours:02d}{minutes:02d}", st.sampled_from("+-"),
              st.integers(0, 99), st.integers(0, 99)),
    st.sampled_from(["GMT", "UT", "EST", "PDT", "Z", "-0000", "+24", ""]),
)
_NUMBERS = st.one_of(st.integers(0, 99), st.integers(0, 10_001), st.integers(0, 10**30))


@st.composite
def date_headers(draw):
    """Mostly RFC 5322 shaped dates with out-of-range parts, sometimes arbitrary text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60)).encode("utf-8", "replace")
    day, year = draw(_NUMBERS), draw(_NUMBERS)
    clock = ":".join(str(draw(_NUMBERS)) for _ in range(draw(st.integers(2, 3))))
    return f"{draw(_DAYS)}{day} {draw(_MONTHS)} {year} {clock} {draw(_ZONES)}".encode()


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(date=date_headers())
def test_any_date_header_is_stored_and_any_date_kept_is_utc_in_range(mailbox, date):
    raw = with_date(date.replace(b"\r", b" ").replace(b"\n", b" "))
    assert_sane(stored(mailbox, raw).date)


def forged_cursor(position: str) -> str:
    data = json.dumps({"v": 1, "t": position, "i": "00000000-0000-0000-0000-000000000000"}).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# Each parses as an aware datetime, then failed in the query: OverflowError on SQLite, DataError on PostgreSQL.
HOSTILE_POSITIONS = ["9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+23:59",
                     "2024-01-01T00:00:00+16:00", "2024-01-01T00:00:00-14:01"]
LISTS = {
    "email_list": lambda owner, mailbox, cursor: email_list(account=owner, mailbox=mailbox, cursor=cursor),
    "thread_list": lambda owner, mailbox, cursor: thread_list(account=owner, mailbox=mailbox, cursor=cursor),
    "email_search": lambda owner, mailbox, cursor: email_search(account=owner, query="", cursor=cursor),
    "email_search with text": lambda owner, mailbox, cursor: email_search(account=owner, query="dated", cursor=cursor),
}


@pytest.mark.parametrize("position", HOSTILE_POSITIONS)
@pytest.mark.parametrize("listing", LISTS)
def test_a_forged_cursor_position_is_invalid_not_a_server_error(owner, mailbox, listing, position):
    stored(mailbox, with_date(b"Tue, 02 Jan 2024 10:00:00 +0000"))
    with pytest.raises(Invalid) as error:
        LISTS[listing](owner, mailbox, forged_cursor(position))
    assert error.value.errors == {"cursor": [error.value.detail]}


@pytest.mark.parametrize("listing", LISTS)
def test_a_cursor_position_with_a_real_offset_means_the_same_instant(owner, mailbox, listing):
    stored(mailbox, with_date(b"Tue, 02 Jan 2024 10:00:00 +0000"))
    later = (dj_timezone.now() + timedelta(days=1)).astimezone(timezone(timedelta(hours=-12)))
    page = LISTS[listing](owner, mailbox, forged_cursor(later.isoformat()))
    assert len(page.items) == 1


@pytest.mark.parametrize("field", ["date_from", "date_to"])
@pytest.mark.parametrize("value", [*HOSTILE_POSITIONS, "9999-12-31", datetime(9999, 12, 31, tzinfo=timezone.utc)])
@pytest.mark.parametrize("query", ["", "dated"])
def test_an_out_of_range_date_bound_is_invalid_not_a_server_error(owner, mailbox, field, value, query):
    stored(mailbox, with_date(b"Tue, 02 Jan 2024 10:00:00 +0000"))
    with pytest.raises(Invalid) as error:
        email_search(account=owner, query=query, **{field: value})
    assert field in error.value.errors and "out of range" in error.value.detail


def test_date_bounds_with_offsets_compare_as_utc_instants(owner, mailbox):
    stored(mailbox, with_date(b"Tue, 02 Jan 2024 10:00:00 +0000"))
    now = dj_timezone.now()
    plus_14 = (now + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=14))).isoformat()
    assert email_search(account=owner, query="", date_from=plus_14).items == []
    assert len(email_search(account=owner, query="", date_to=plus_14, date_from="0001-01-01").items) == 1
