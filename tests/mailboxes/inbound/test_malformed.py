import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from mailboxes.inbound.bodies import html_sanitize
from mailboxes.inbound.ingest import email_ingest
from mailboxes.inbound.parsing import MAX_DEPTH, MAX_PARTS, parse_message
from tests.mailboxes.inbound_helpers import make_message, many_parts_message, nested_message


def stored_raw(email):
    with email.raw.open("rb") as handle:
        return handle.read()


def single_part(*, charset, body: bytes, subject=b"Test"):
    return (b"From: sender@example.com\r\nTo: owner@example.org\r\nSubject: " + subject + b"\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset.encode() +
            b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")


@pytest.mark.parametrize("charset, text", [
    ("iso-8859-1", "Grüße aus Köln, café"),
    ("koi8-r", "Привет, мир"),
    ("shift_jis", "こんにちは世界"),
])
def test_bodies_in_each_declared_charset_are_decoded(mailbox, charset, text):
    email = email_ingest(mailbox=mailbox, raw=single_part(charset=charset, body=text.encode(charset)))
    assert email.text.strip() == text
    assert email.defects == []


def test_encoded_word_subjects_in_other_charsets_are_decoded(mailbox):
    raw = single_part(charset="utf-8", body=b"x", subject=b"=?koi8-r?B?8NLJ18XU?= =?iso-8859-1?Q?Gr=FC=DFe?=")
    assert email_ingest(mailbox=mailbox, raw=raw).subject == "ПриветGrüße"


def test_unknown_charset_falls_back_and_is_recorded_as_a_defect(mailbox):
    raw = single_part(charset="x-made-up-42", body="naïve café".encode("utf-8"))
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert email.text.strip() == "naïve café"
    assert any(d.startswith("UnknownCharset") for d in email.defects)
    assert stored_raw(email) == raw


def test_non_text_codec_names_are_refused_as_charsets(mailbox):
    email = email_ingest(mailbox=mailbox, raw=single_part(charset="zlib_codec", body=b"plain words"))
    assert email.text.strip() == "plain words"
    assert email.defects


def test_nul_bytes_and_undecodable_bytes_are_stored(mailbox):
    raw = single_part(charset="utf-8", body=b"a\x00b \xff\xfe c", subject=b"N\x00UL \xc3\x28")
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert "\x00" not in email.text and "\x00" not in email.subject
    assert stored_raw(email) == raw


def test_nesting_deeper_than_the_cap_is_recorded_and_the_raw_kept(mailbox):
    assert not any("TooDeeplyNested" in d for d in parse_message(nested_message(MAX_DEPTH)).defects)
    raw = nested_message(MAX_DEPTH + 1)
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert any("TooDeeplyNested" in d for d in email.defects)
    assert stored_raw(email) == raw


def test_more_parts_than_the_cap_is_recorded_and_the_raw_kept(mailbox):
    raw = many_parts_message(MAX_PARTS + 1)
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert any("TooManyParts" in d for d in email.defects)
    assert stored_raw(email) == raw
    assert "part 0" in email.text


def _cpython_email_corpus():
    spec = importlib.util.find_spec("test.test_email")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return sorted(data.glob("msg_*.txt"))


@pytest.mark.django_db
def test_cpython_email_corpus_is_stored_without_errors(mailbox):
    corpus = _cpython_email_corpus()
    if not corpus:
        pytest.skip("CPython's test.test_email data is not installed with this Python")
    for path in corpus:
        raw = path.read_bytes()
        email = email_ingest(mailbox=mailbox, raw=raw)
        assert stored_raw(email) == raw, path.name


_SEEDS = [
    make_message(subject="Seed", text="plain body\n", html="<p>html <b>body</b></p>", message_id="seed@x",
                 references=["r1@x", "r2@x"], attachments=[("a.txt", "text/plain", b"attached text")]),
    single_part(charset="koi8-r", body="Привет".encode("koi8-r"), subject=b"=?utf-8?B?w6k=?="),
    nested_message(3),
]
_SPECIALS = [b"\r\n", b"\n", b"\r", b":", b"<", b">", b"=?", b"?=", b"--", b"\x00", b"\xff", b"boundary=",
             b"Content-Type: multipart/mixed; boundary=\"", b"charset=", b"=?x-unknown?Q?", b";", b"\"", b"\t"]


@st.composite
def mutated_messages(draw):
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["insert", "delete", "flip", "truncate"]))
        if action == "insert":
            chunk = draw(st.one_of(st.sampled_from(_SPECIALS), st.binary(min_size=1, max_size=12)))
            data[position:position] = chunk
        elif action == "delete":
            del data[position:position + draw(st.integers(min_value=1, max_value=40))]
        elif action == "flip" and position < len(data):
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated_messages())
def test_mutated_messages_never_raise_and_keep_their_exact_bytes(mailbox, raw):
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert stored_raw(email) == raw
    assert email.size == len(raw)


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
    "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\"java\tscript:alert(1)\">x</a>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<body onload=alert(1)>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<div style=\"width: expression(alert(1))\">x</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<form action=\"javascript:alert(1)\"><input type=submit></form>",
    "<object data=\"data:text/html,<script>alert(1)</script>\"></object>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
    "<img src=\"data:image/svg+xml,<svg onload=alert(1)>\">",
    "<details open ontoggle=alert(1)>",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "<table background=\"javascript:alert(1)\"><td>x</td></table>",
    "<style>@import 'http://evil.example/x.css';</style><p>hi</p>",
    "<!--<img src=\"--><img src=x onerror=alert(1)//\">",
    "<p onmouseover=\"alert(1)\" style=\"color:red\">hover</p>",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payloads_are_neutralised_and_sanitising_twice_equals_once(payload):
    once = html_sanitize(payload)
    assert html_sanitize(once) == once
    lowered = once.lower()
    for needle in ("<script", "javascript:", "vbscript:", "onerror", "onload", "onmouseover", "ontoggle",
                   "<iframe", "<object", "<meta", "<base", "<form", "expression(", "data:", "@import"):
        assert needle not in lowered, (payload, once)


def test_pathologically_nested_html_is_kept_as_text_without_slow_sanitising(mailbox):
    raw = (b"From: a@example.com\r\nTo: owner@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n" + b"<div>" * 50_000 + b"payload\r\n")
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert email.html == "" and email.text == "payload"
    assert any(d.startswith("HtmlTooDeeplyNested") for d in email.defects)


def test_huge_address_and_subject_headers_are_capped(mailbox):
    to = b", ".join(b"user%d@example.com" % i for i in range(20_000))
    raw = b"From: a@example.com\r\nTo: " + to + b"\r\nSubject: " + b"spam " * 20_000 + b"\r\n\r\nbody\r\n"
    email = email_ingest(mailbox=mailbox, raw=raw)
    assert len(email.to) == 500 and email.to[0] == {"address": "user0@example.com", "name": ""}
    assert len(email.subject) <= 32_000
    assert stored_raw(email) == raw
