"""Reply text (Email.text_clean): how many replies of a public corpus each cutter gets right, and its speed.

Usage: python bench/reply_accuracy.py [--small] [--verbose]
The corpus is talon's (Apache-2.0, copied into tests/mailboxes/fixtures/replies): its 12 standard_replies
e-mails and the 49 plain-text cases of its text_quotations_test.py, 61 in all. "Right" is defined in
tests/mailboxes/inbound/reply_corpus.py: the cut text equals the expected reply after whitespace
normalisation (the expected reply less its "-- " signature, which text_clean drops). "Keeps sender text"
counts answers that contain every line of the expected reply (right, or wrong by keeping more).
Options compared on the same cases:
  before             text_without_quotes as of 7ddcc6e (copied below, so the figure stays reproducible)
  mail-parser-reply  its latest_reply (all its languages), less the "-- " signature as text_clean drops it;
                     only when installed (pip install mail-parser-reply==1.36); as-is on the next row
  text_without_quotes  the cutter in use (mailboxes.inbound.bodies)
Then the time the cutter in use takes on 2,000,000-character hostile bodies (the parser's cap), to show it
stays linear. --small is what bench/smoke runs: the whole corpus, 200,000-character bodies. No network,
no database.
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailboxes.inbound.bodies import text_without_quotes  # noqa: E402
from tests.mailboxes.inbound.reply_corpus import keeps_sender_text, reply_cases, reply_matches  # noqa: E402

_ATTRIBUTION = re.compile(
    r"^(on\b.{0,400}\b(wrote|writes)|le\b.{0,400}\ba écrit|am\b.{0,400}\bschrieb|el\b.{0,400}\bescribió)\s*:\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(r"^-{2,}\s*(original message|forwarded message|ursprüngliche nachricht)\s*-{2,}", re.IGNORECASE)


def before(text):
    """text_without_quotes as it was at 7ddcc6e."""
    lines = (text or "").splitlines()
    cut = len(lines)
    for index, line in enumerate(lines):
        stripped = line.strip()
        joined = f"{stripped} {lines[index + 1].strip()}" if index + 1 < len(lines) else stripped
        if line in ("-- ", "--") or _ORIGINAL.match(stripped) or _ATTRIBUTION.match(stripped) \
                or (stripped.lower().startswith("on ") and _ATTRIBUTION.match(joined)):
            cut = index
            break
    kept = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    return "\n".join(kept).strip()


def library_options():
    try:
        from mailparser_reply import EmailReplyParser
        from mailparser_reply.constants import MAIL_LANGUAGES
    except ImportError:
        return {}
    parser = EmailReplyParser(languages=list(MAIL_LANGUAGES))

    def latest_reply(text):
        return parser.parse_reply(text) or ""

    def without_signature(text):
        lines = latest_reply(text).split("\n")  # the library strips each line: "-- " comes out as "--"
        cut = next((index for index, line in enumerate(lines) if line in ("-- ", "--")), len(lines))
        return "\n".join(lines[:cut]).strip()

    return {"mail-parser-reply": without_signature, "mail-parser-reply, as-is": latest_reply}


def accuracy(cases, cutter):
    right = keeps = 0
    misses = []
    for case in cases:
        got = cutter(case.text)
        right += reply_matches(got, case.expected)
        keeps += keeps_sender_text(got, case.expected)
        if not reply_matches(got, case.expected):
            misses.append((case, got))
    return right, keeps, misses


def hostile_bodies(size):
    """Bodies built to make a line-by-line cutter do the most work per character."""
    shapes = {
        "ordinary text": "the quarterly report shows steady growth in every region\n",
        "quoted lines": "> the quarterly report shows steady growth\n",
        "address lines ending ':'": "a@b.co:\n",
        "attribution above quote": "On 1 2024 a@b.co wrote:\n> x\n",
        "header-like lines": "From: a@b.co\nTo: x\n",
        "rules": "-" * 9 + "\n",
        "empty lines": "\n",
    }
    return {name: (line * (size // len(line) + 1))[:size] for name, line in shapes.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI size: 200,000-character hostile bodies")
    parser.add_argument("--verbose", action="store_true", help="print each case the cutter in use gets wrong")
    options = parser.parse_args()
    cases = reply_cases()
    cutters = {"before (7ddcc6e)": before, **library_options(), "text_without_quotes": text_without_quotes}
    print(f"{len(cases)} replies (tests/mailboxes/fixtures/replies)")
    print(f"{'option':28} {'right':>12} {'keeps sender text':>18}")
    for name, cutter in cutters.items():
        right, keeps, misses = accuracy(cases, cutter)
        print(f"{name:28} {right:>4} of {len(cases):<5} {keeps:>6} of {len(cases)}")
    if "mail-parser-reply" not in cutters:
        print("mail-parser-reply: not installed (pip install mail-parser-reply==1.36 to compare)")
    if options.verbose:
        for case, got in accuracy(cases, text_without_quotes)[2]:
            print(f"--- {case.name}\nexpected: {case.expected!r}\ngot:      {got!r}")
    size = 200_000 if options.small else 2_000_000
    print(f"\ntext_without_quotes on {size:,}-character bodies")
    for name, body in hostile_bodies(size).items():
        started = time.perf_counter()
        text_without_quotes(body)
        print(f"  {name:28} {time.perf_counter() - started:6.2f} s")


if __name__ == "__main__":
    main()
