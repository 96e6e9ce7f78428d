"""The public corpus of replies (tests/mailboxes/fixtures/replies, from talon) and what "right" means on it.

Shared by tests/mailboxes/inbound/test_reply_text.py and bench/reply_accuracy.py, so the test guards the
figure the benchmark prints. No Django needed.

A case is right when the cut text equals the expected reply after whitespace normalisation: both are split
on whitespace and the word sequences compared (`" ".join(text.split())`). The expected reply is talon's,
less its "-- " signature block (text_clean drops the signature by contract; only sparrow has one).
A case keeps the sender's text when every line of that expected reply is in the cut text (normalised the
same way): wrong answers that keep more than the reply are allowed, answers that drop any of it are not.
"""

import json
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "replies"


@dataclass(frozen=True)
class ReplyCase:
    name: str
    text: str  # the message's plain text, as the reply cutter receives it
    expected: str  # talon's expected reply text, signature removed
    raw: bytes = b""  # the whole message, for the .eml cases

    def __str__(self):
        return self.name


def _without_signature(text):
    lines = text.split("\n")
    return "\n".join(lines[:lines.index("-- ")] if "-- " in lines else lines)


def _plain_text(raw):
    message = message_from_bytes(raw, policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def reply_cases():
    """The 12 standard replies (.eml, expected "Hello" unless a *_reply_text file says otherwise, as in
    talon's test_standard_replies) and the 49 plain-text cases of talon's text_quotations_test.py."""
    cases = []
    for eml in sorted((FIXTURES / "standard_replies").glob("*.eml")):
        raw = eml.read_bytes()
        expected_file = eml.with_name(f"{eml.stem}_reply_text")
        expected = expected_file.read_text(encoding="utf-8").strip() if expected_file.exists() else "Hello"
        cases.append(ReplyCase(f"standard_replies/{eml.stem}", _plain_text(raw), _without_signature(expected), raw))
    for case in json.loads((FIXTURES / "talon_text_cases.json").read_text(encoding="utf-8")):
        cases.append(ReplyCase(f"text_quotations/{case['name']}", case["text"], _without_signature(case["expected"])))
    return cases


def _normalised(text):
    return " ".join((text or "").split())


def reply_matches(got, expected):
    return _normalised(got) == _normalised(expected)


def keeps_sender_text(got, expected):
    kept = _normalised(got)
    return all(_normalised(line) in kept for line in expected.split("\n"))
