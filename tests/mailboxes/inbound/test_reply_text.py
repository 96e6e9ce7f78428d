"""Email.text_clean, the reply text without quoted history or signature, on real-world replies.

The corpus (tests/mailboxes/fixtures/replies, from talon) and what counts as right are in reply_corpus.py;
bench/reply_accuracy.py prints the same figure next to the cutter it replaced and mail-parser-reply.
"""

import time

import pytest

from mailboxes.inbound.bodies import text_without_quotes
from mailboxes.inbound.ingest import email_ingest
from tests.mailboxes.inbound.reply_corpus import FIXTURES, keeps_sender_text, reply_cases, reply_matches
from tests.mailboxes.inbound_helpers import make_message
from tests.timing import within

CASES = reply_cases()
# Measured with bench/reply_accuracy.py: 60 of 61 (the cutter before this one: 23). The one miss keeps
# more than the reply: a lone "From: somebody@example.com" line is not taken for a quoted header block.
MEASURED_RIGHT = 60


def standard_reply(name):
    return (FIXTURES / "standard_replies" / f"{name}.eml").read_bytes()


def test_bottom_posted_thunderbird_reply_keeps_its_new_text(mailbox):
    # Before: "" (the attribution on the first line cut everything).
    email = email_ingest(mailbox=mailbox, raw=standard_reply("thunderbird"))
    assert email.text_clean == "Hello"


def test_bottom_posted_reply_below_a_short_quote_keeps_its_new_text(mailbox):
    text = "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi\nHello"
    email = email_ingest(mailbox=mailbox, raw=make_message(text=text))
    assert email.text_clean == "Hello"


def test_reply_interleaved_with_the_quote_keeps_every_answer_and_its_questions(mailbox):
    text = ("On Mon, 3 Jun 2024 at 10:00, Bob <bob@example.com> wrote:\n> Can you come on Friday?\nYes.\n\n"
            "> Could you bring the slides?\nI will.\n\n> Thanks,\n> Bob\n")
    email = email_ingest(mailbox=mailbox, raw=make_message(text=text))
    assert email.text_clean == ("On Mon, 3 Jun 2024 at 10:00, Bob <bob@example.com> wrote:\n> Can you come on Friday?\n"
                                "Yes.\n\n> Could you bring the slides?\nI will.")


def test_outlook_reply_drops_the_history_under_its_header_block(mailbox):
    # Before: the whole Loop notification stayed in text_clean.
    email = email_ingest(mailbox=mailbox, raw=standard_reply("outlook"))
    assert email.text_clean == "Hello"


def test_outlook_reply_drops_the_history_under_its_rule_and_header_block(mailbox):
    text = ("Friday works for me.\n\nAlice\n\n________________________________\nFrom: Bob Jones <bob@example.com>\n"
            "Sent: Monday, June 3, 2024 10:00 AM\nTo: Alice <alice@example.com>\nSubject: Meeting\n\n"
            "Can we meet on Friday?\n\nBob\n")
    email = email_ingest(mailbox=mailbox, raw=make_message(text=text))
    assert email.text_clean == "Friday works for me.\n\nAlice"


def test_russian_android_reply_drops_its_attribution_and_quote(mailbox):
    # "02.04.2012 14:20 пользователь "bob@…" <\nbob@…> написал:" wrapped over two lines, then "> Hi".
    email = email_ingest(mailbox=mailbox, raw=standard_reply("android"))
    assert email.text_clean == "Hello"


@pytest.mark.parametrize("attribution", [
    "Am 03.06.2024 um 10:00 schrieb Bob Jones <bob@example.com>:",  # German, Thunderbird / Apple Mail
    "Am Mo., 3. Juni 2024 um 10:00 Uhr schrieb Bob Jones <bob@example.com>:",  # German, Gmail
    "Bob Jones <bob@example.com> schrieb am 03.06.2024 10:00:",  # German, verb then date
    "Le lun. 3 juin 2024 à 10:00, Bob Jones <bob@example.com> a écrit :",  # French, Gmail
    "Le 3 juin 2024 à 10:00, Bob Jones a écrit :",  # French, Apple Mail
    "3 июня 2024 г., в 10:00, Боб <bob@example.com> написал(а):",  # Russian, Apple Mail
    "03.06.2024 10:00, Bob Jones пишет:",  # Russian, Thunderbird
    "пн, 3 июн. 2024 г. в 10:00, Bob Jones <bob@example.com>:",  # Russian, Gmail (no verb)
    "El lun, 3 jun 2024 a las 10:00, Bob Jones (<bob@example.com>) escribió:",  # Spanish
    "Il giorno lun 3 giu 2024 alle ore 10:00 Bob Jones <bob@example.com> ha scritto:",  # Italian
    "Em seg., 3 de jun. de 2024 às 10:00, Bob Jones <bob@example.com> escreveu:",  # Portuguese
    "Op ma 3 jun 2024 om 10:00 schreef Bob Jones <bob@example.com>:",  # Dutch
    "W dniu 3.06.2024 o 10:00, Bob Jones <bob@example.com> pisze:",  # Polish, Thunderbird
    "Den 3. jun. 2024 kl. 10.00 skrev Bob Jones <bob@example.com>:",  # Danish
    "ons 4 dec. 2024 kl. 20:42 skrev Bob Jones <bob@example.com>:",  # Swedish, Gmail
    "2024年6月3日(月) 10:00 Bob Jones <bob@example.com>:",  # Japanese, Gmail
    "在 2024年6月3日 10:00, Bob Jones <bob@example.com> 写道：",  # Chinese
])
def test_attribution_lines_in_other_languages_end_the_reply(attribution):
    text = f"Thanks, see you then.\n\n{attribution}\n\n> Are you coming on Friday?\n> Bob\n"
    assert text_without_quotes(text) == "Thanks, see you then."


@pytest.mark.parametrize("headers", [
    "Von: Bob Jones <bob@example.com>\nGesendet: Montag, 3. Juni 2024 10:00\nAn: Alice\nBetreff: Treffen",
    "De : Bob Jones [mailto:bob@example.com]\nEnvoyé : lundi 3 juin 2024 10:00\nÀ : Alice\nObjet : Réunion",
    "От: Bob Jones <bob@example.com>\nОтправлено: 3 июня 2024 г. 10:00\nКому: Alice\nТема: Встреча",
    "*From:* Bob Jones <bob@example.com>\n*Sent:* Monday, June 3, 2024 10:00 AM\n*To:* Alice\n*Subject:* Meeting",
])
def test_outlook_header_blocks_in_other_languages_end_the_reply(headers):
    text = f"Thanks, see you then.\n\n{headers}\n\nAre you coming on Friday?\nBob\n"
    assert text_without_quotes(text) == "Thanks, see you then."


@pytest.mark.parametrize("text", [
    "On second thought, here is what he wrote:\nthe plan is fine.\nLet's go.",
    "On 3 June we met.\nIt went well.\nBob wrote: ok",
    "3 customers wrote:\nThe product is great.",
    "Date: Friday\nTime: 3pm\nPlace: the office\n\nSee you there.",
    "From: Alice\nTo: the team\n\nPlease read the notes.",
    "Sure.\n\n> one line I quote by hand\n> and another",
    "Visit us now for assistance...\n>>> >>>  http://www.domain.com <<<\nVisit our site by clicking the link above",
    "Mvh,\nPerson A\n070-0000000",
])
def test_text_that_only_looks_like_history_is_kept_whole(text):
    assert text_without_quotes(text) == text


def test_forwarded_message_is_kept_as_what_the_sender_sends():
    text = ("FYI\n\n---------- Forwarded message ---------\nFrom: Bob <bob@example.com>\n"
            "Date: Mon, Jun 3, 2024 at 10:00 AM\nSubject: Plan\nTo: Alice <alice@example.com>\n\nThe plan.")
    assert text_without_quotes(text) == text


def test_reply_with_nothing_but_a_header_block_above_it_keeps_the_text(mailbox):
    # A header block at the very top and nothing before it: the text below is all there is; keep it.
    text = "Od: Jan Kowalski <jan@example.com>\nWysłano: środa, 1 marca 2023 12:00\nTemat: Test\n\nCześć Anno,\nJan"
    assert text_without_quotes(text) == text


def test_signature_after_the_new_text_is_still_dropped():
    text = "Sounds good, ship it.\n\n-- \nAlice\nCEO\n\nOn Mon, 3 Jun 2024, Bob <bob@example.com> wrote:\n> Ship?\n"
    assert text_without_quotes(text) == "Sounds good, ship it."
    bottom = "On Mon, 3 Jun 2024, Bob <bob@example.com> wrote:\n> Ship?\nShipped.\n-- \nAlice\n"
    assert text_without_quotes(bottom) == "Shipped."


@pytest.mark.parametrize("case", [case for case in CASES if case.raw], ids=str)
def test_standard_reply_ingested_keeps_all_of_the_senders_text(mailbox, case):
    email = email_ingest(mailbox=mailbox, raw=case.raw)
    assert keeps_sender_text(email.text_clean, case.expected), email.text_clean
    assert reply_matches(email.text_clean, case.expected), email.text_clean


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("line_ending", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_corpus_reply_never_loses_the_senders_text(case, line_ending):
    got = text_without_quotes(case.text.replace("\r\n", "\n").replace("\n", line_ending))
    assert keeps_sender_text(got, case.expected), got
    assert got.strip() or not case.expected.strip()
    assert "\r" not in got


def test_corpus_accuracy_does_not_drop_below_the_measured_figure():
    right = [case.name for case in CASES if reply_matches(text_without_quotes(case.text), case.expected)]
    assert len(CASES) == 61
    assert len(right) >= MEASURED_RIGHT, sorted({case.name for case in CASES} - set(right))


@pytest.mark.latency
def test_cutter_stays_linear_on_a_hostile_body():
    # 2,000,000 characters (the parser's cap) of lines that each pass the cheap checks: about a second.
    body = "a@b.co:\n> x\n" * 166_000
    started = time.perf_counter()
    text_without_quotes(body)
    assert time.perf_counter() - started < within(15)
