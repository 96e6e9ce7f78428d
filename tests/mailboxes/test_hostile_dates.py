"""Hostile Date headers are stored as date=None with a defect; the message itself is always kept."""

from datetime import timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from mailboxes.ingest import email_ingest
from mailboxes.models import Email
from mailboxes.parsing import MAX_DATE_YEAR, MIN_DATE_YEAR


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
                                              use_header_date=True).pk)
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
