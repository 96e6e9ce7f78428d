"""Reply text: the part of a message its sender wrote, without the quoted history or the "-- " signature.

Every line gets a mark (t text, e empty, m quoted with ">", s splitter: an attribution line, an Outlook
header block, an original-message separator; f a forwarded-message separator) and the marks decide what is
history. The rule throughout: new text is never dropped, and when a message is ambiguous more of it is
kept. So a splitter needs strong evidence (a date next to a "wrote" verb, two or three header fields),
weaker evidence counts only when quoted lines follow it, a reply written into the quote keeps the quote,
and a message that would come out empty keeps everything but its ">" lines. Accuracy on a public corpus
of replies: bench/reply_accuracy.py.
"""

import re

# Attributions are short; longer lines are text, which also keeps the regexes cheap on hostile input.
_MAX_SPLITTER_LINE = 500
_MAX_SPAN_LINES = 5  # "On <date>, Name <\naddress>\nwrote:" wraps; polymail spreads it over five lines
_MAX_HEADER_BLOCK = 12
_SPAN_ENDINGS = (":", "：", "-", ">")  # how an attribution ends: "wrote:", "<address>:", "wrote ----"
_VERB_TAIL = 80  # "… ezt írta (időpont: 2024. jún. 3., H 10:00):" has its verb within this many characters

# "Wrote" as common clients end their attribution lines, in the languages we see.
_WROTE = (r"wrote|writes|sent|a écrit|a ecrit|schrieb|schreef|verzond|geschreven|escribió|escribio|escreveu|"
          r"ha scritto|scrisse|napisał(?:\(a\))?|napisala|pisze|napsal(?:\(a\))?|napsala|написал(?:\(а\))?|написала|"
          r"пишет|написав|a scris|skrev|kirjoitti|yazdı|đã viết|ezt írta|写道|寫道|のメッセージ|は書きました|님이 작성")
# Words that open an attribution line. Capitalised only: "on second thought, he wrote:" is a sentence.
_OPENER = r"On|Le|Am|El|Em|Il|Op|Den|På|W dniu|Dnia|Dne|Dňa|Dana|Pe|Vào|Στις|В|Во|在"
_OPENS = re.compile(rf"^[\s-]*(?:{_OPENER})\s")
_DATE_START = re.compile(r"^\W*(?:\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(?!\d)|\d{4}\s*年|\d{1,2}\.?\s+\w+\.?,?\s+\d{4})")
_DATE_HINT = re.compile(r"\b(?:19|20)\d\d\b|\d{1,2}[:.h]\d\d\b|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{4}年")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ENDS_WROTE = re.compile(rf"(?:^|[\s>\"'),.])(?:{_WROTE})\s*(?:\([^()]*\))?\s*[:：]\s*-*\s*$|"
                         rf"(?:^|\s)(?:{_WROTE})\s*-{{2,}}\s*$", re.IGNORECASE)
# German, Dutch and Scandinavian clients put the verb before the name: "Am 3. Juni schrieb Bob <b@x>:".
_WROTE_INSIDE = re.compile(r"^[\s-]*(?:Am|Op|Den|På)\s.*\s(?:schrieb|schreef|skrev)\s.*[:：]\s*$", re.IGNORECASE)
_FRAMED = re.compile(r"\s*-{2,}.*-{2,}\s*$")  # "---- John Smith wrote ----"
# Reply text and attribution on one line: "Sounds good. On Wed, Apr 4, 2012, Bob wrote:".
_SHARED_OPENER = re.compile(rf"(?<=[^\s-])(?:\s+|\s*(?=-))-*\s*(?:{_OPENER})\s")

_HEADER_NAMES = {
    "from": "from|von|de|van|fra|från|da|od|от|lähettäjä|kimden|feladó|差出人|发件人|寄件者|보낸 사람",
    "date": "sent|date|gesendet|datum|envoyé|verzonden|sendt|skickat|enviado|enviada|inviato|data|wysłano|"
            "отправлено|дата|odesláno|lähetetty|gönderildi|küldve|送信日時|发送时间|發送時間|날짜|보낸 날짜",
    "to": "to|an|à|a|aan|til|till|para|do|кому|komu|vastaanottaja|kime|címzett|宛先|收件人|收件者|받는 사람",
    "cc": "cc|kopie|copie|kopi|kopia|копия|kopio|bilgi|másolat",
    "subject": "subject|betreff|objet|onderwerp|emne|ämne|asunto|oggetto|assunto|temat|тема|předmět|aihe|konu|"
               "tárgy|件名|主题|主旨|제목",
}
_HEADER = re.compile(r"^\s*\*?\s*(?:" + "|".join(f"(?P<{field}>{names})" for field, names in _HEADER_NAMES.items())
                     + r")\s*\*?\s*[:：]\*?(?:\s|$)", re.IGNORECASE)
_RULE = re.compile(r"^\s*(?:_{8,}|-{8,})\s*$")  # Outlook draws one above its header block
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(?:original message|reply message|ursprüngliche nachricht|antwort nachricht|oprindelig meddelelse|"
    r"message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|originalmeddelande|"
    r"opprinnelig melding|исходное сообщение|wiadomość oryginalna|původní zpráva|alkuperäinen viesti|"
    r"mensagem original|eredeti üzenet|原始邮件|元のメッセージ)\s*-{2,}\s*$", re.IGNORECASE)
_FORWARDED = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|"
    r"messaggio inoltrato|doorgestuurd bericht|videresendt meddelelse|vidarebefordrat meddelande|"
    r"пересылаемое сообщение|wiadomość przekazana dalej|přeposlaná zpráva)\s*-{2,}|"
    r"begin forwarded message:|anfang der weitergeleiteten nachricht:|début du message réexpédié\s*:)\s*$",
    re.IGNORECASE)
_LINK_OPEN = re.compile(r"[(<]https?://[^)>\s]*$")
_LINK_LINE = re.compile(r"^\s*[(<]?https?://")


def text_without_quotes(text):
    """The new part of a reply: without the quoted history (attribution lines in many languages, ">" quotes,
    Outlook header blocks, original-message separators) and without the "-- " signature."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    near = _evidence(lines)
    lines, split = _split_shared_lines(lines, near)
    if split:
        near = _evidence(lines)
    marks = _mark(lines, near)
    kept = _reply_lines(lines, marks)
    if not any(line.strip() for line in kept):
        # Never empty unless every line is a ">" quote: what else there is may be the sender's.
        kept = [line for line, mark in zip(lines, marks) if mark != "m"]
    return "\n".join(_without_signature(kept)).strip()


def _quoted(line):
    return line.lstrip().startswith(">")


def _next_filled(lines, index):
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _evidence(lines):
    """For each line, whether an attribution could start there: it or one of the next few lines has an
    address or ends in a "wrote" verb. Cheap, so the full check runs on few lines of a hostile body."""
    evidence = ["@" in line or line.rstrip()[-1:] in _SPAN_ENDINGS and len(line) <= _MAX_SPLITTER_LINE
                and bool(_ENDS_WROTE.search(line[-_VERB_TAIL:]) or _WROTE_INSIDE.match(line)) for line in lines]
    near, last = [False] * len(lines), None
    for index in range(len(lines) - 1, -1, -1):
        if evidence[index]:
            last = index
        near[index] = last is not None and last - index < _MAX_SPAN_LINES
    return near


def _attribution_span(lines, index):
    """How many lines from `index` form an attribution ("On <date>, <name> wrote:"), 0 if none."""
    first = lines[index]
    if len(first) > _MAX_SPLITTER_LINE or _quoted(first) or not first.strip():
        return 0
    opens = bool(_OPENS.match(first) or _DATE_START.match(first))
    framed = first.lstrip().startswith("--")
    if not opens and not framed:  # then only a one-line attribution above a quote
        after = _next_filled(lines, index + 1)
        if after >= len(lines) or not _quoted(lines[after]):
            return 0
    weak = []
    for size in range(1, _MAX_SPAN_LINES + 1):
        span_lines = lines[index:index + size]
        if len(span_lines) < size or len(span_lines[-1]) > _MAX_SPLITTER_LINE:
            break
        if size > 1:
            # Only an attribution's opening line starts a wrapped one; a sentence that ends, or a line that
            # opens an attribution itself, is not part of the one above.
            if not opens or span_lines[-2].rstrip()[-1:] in (".", "!", "?") or _OPENS.match(span_lines[-1]) \
                    or _DATE_START.match(span_lines[-1]):
                break
            # No blank line inside, but for polymail's "On <date> Name\n\n<\nmailto:Name <address>\n> wrote:".
            if not span_lines[-2].strip() and not span_lines[-1].lstrip().startswith(("<", "mailto:")):
                break
        if span_lines[-1].rstrip()[-1:] not in _SPAN_ENDINGS:
            continue
        span = " ".join(line.strip() for line in span_lines)
        has_email = "@" in span and bool(_EMAIL.search(span))
        if size > 1 and not has_email:
            continue  # attributions wrap because of a long address, so a wrapped one has one
        ends_wrote = bool(_ENDS_WROTE.search(span[-_VERB_TAIL:]))
        if opens and (ends_wrote or _WROTE_INSIDE.match(span)) and _DATE_HINT.search(span) \
                or framed and ends_wrote and _FRAMED.match(span):
            return size
        weak.append((size, span, has_email, ends_wrote))
    # Weaker evidence (no opener, or no date) counts only when quoted lines follow it.
    for size, span, has_email, ends_wrote in weak:
        after = _next_filled(lines, index + size)
        if after < len(lines) and _quoted(lines[after]):
            has_date = bool(_DATE_HINT.search(span))
            if ends_wrote and (has_email or has_date or opens) or has_email and has_date and span[-1] in ">:：":
                return size
    return 0


def _header_field(line):
    """"from", "date", "to", "cc" or "subject" for a header-like line ("From: Bob", "*Gesendet:* …"), else None."""
    if len(line) > _MAX_SPLITTER_LINE:
        return None
    match = _HEADER.match(line)
    return match.lastgroup if match else None


def _header_block(lines, fields, index):
    """How many lines from `index` form a quoted message's header block (From:/Sent:/To:/Subject:), 0 if none."""
    if fields[index] not in ("from", "date"):
        return 0
    seen, end, gap, position = {fields[index]}, index + 1, 0, index + 1
    while position < min(len(lines), index + _MAX_HEADER_BLOCK) and gap <= 2 and lines[position].strip():
        if fields[position]:
            seen.add(fields[position])
            end, gap = position + 1, 0
        else:
            gap += 1  # a header wrapped onto the next line
        position += 1
    # "Date: Friday" alone, or "From: Alice" and "To: the team", is something a sender may well write.
    block = " ".join(lines[index:end])
    if len(seen) >= 3 or len(seen) == 2 and (_EMAIL.search(block) or _DATE_HINT.search(block)):
        return end - index
    return 0


def _split_shared_lines(lines, near):
    """Put an attribution that shares a line with the reply ("Thanks! On <date>, Bob wrote:") on its own line."""
    result, split = [], False
    for index, line in enumerate(lines):
        if near[index] and len(line) <= _MAX_SPLITTER_LINE and not _quoted(line) and not _OPENS.match(line) \
                and not _DATE_START.match(line):
            for match in _SHARED_OPENER.finditer(line):
                reply, attribution = line[:match.start()], line[match.start():].strip()
                if reply.strip() and _attribution_span([attribution, *lines[index + 1:index + _MAX_SPAN_LINES]], 0):
                    result.extend([reply.rstrip(), attribution])
                    split = True
                    break
            else:
                result.append(line)
        else:
            result.append(line)
    return result, split


def _mark(lines, near):
    fields = [_header_field(line) if ":" in line[:40] or "：" in line[:40] else None for line in lines]
    marks, index = [], 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            marks.append("e")
        elif stripped[0] == ">":
            # "<http://long\n> link" is a wrapped link, not a quote.
            marks.append("t" if index and marks[-1] == "t" and _LINK_OPEN.search(lines[index - 1]) else "m")
        elif stripped[0] in "-_" and _FORWARDED.match(line) or stripped[-1] == ":" and _FORWARDED.match(line):
            marks.append("f")
        elif stripped[0] == "-" and _ORIGINAL.match(line):
            marks.append("s")
        else:
            size = (near[index] and _attribution_span(lines, index)
                    or fields[index] and _header_block(lines, fields, index))
            if not size and stripped[0] in "-_" and _RULE.match(line):
                after = _next_filled(lines, index + 1)
                block = _header_block(lines, fields, after) if after < len(lines) else 0
                size = after - index + block if block else 0
            if size:
                marks.extend("s" * size)
                index += size
                continue
            marks.append("t")
        index += 1
    return marks


def _interleaved(lines, marks):
    """True when text lines sit between quoted lines: a reply written into the quote."""
    last_quote = None
    for index, mark in enumerate(marks):
        if mark == "m":
            if last_quote is not None and index - last_quote > 1:
                between = [i for i in range(last_quote + 1, index) if marks[i] == "t"]
                # One line of a link wrapped out of the quote is not a reply.
                wrapped_link = len(between) == 1 and (_LINK_LINE.match(lines[between[0]])
                                                      or _LINK_OPEN.search(lines[between[0] - 1]))
                if between and not wrapped_link:
                    return True
            last_quote = index
        elif mark in "sf":
            last_quote = None
    return False


def _reply_lines(lines, marks):
    if "s" not in marks and marks.count("m") < 3:
        # A line or two starting with ">" and no attribution: decoration ("> > > http://..."), not a quote.
        marks = ["t" if mark == "m" else mark for mark in marks]
    first_marker = next((mark for mark in marks if mark in "msf"), None)
    if first_marker is None or first_marker == "f":
        return lines  # no history, or a forward: what is forwarded is what the sender sends
    if _interleaved(lines, marks):
        last_text = max(index for index, mark in enumerate(marks) if mark == "t")
        return lines[:last_text + 1]
    # A splitter followed by unmarked text (Outlook, or HTML turned into text): history to the end.
    for index, mark in enumerate(marks):
        if mark == "s" and (index == 0 or marks[index - 1] != "s"):
            end = index
            while end < len(marks) and marks[end] in "se":
                end += 1
            if end < len(marks) and marks[end] in "tf":
                lines, marks = lines[:index], marks[:index]
                break
    # The history runs from the first splitter or run of quoted lines to the last quoted line; text after
    # it (a bottom-posted reply, a closing "Regards") is the sender's.
    start = next((index for index, mark in enumerate(marks)
                  if mark == "s" or mark == "m" and _next_mark(marks, index) == "m"), None)
    if start is None:
        return lines
    end = max(index for index, mark in enumerate(marks) if mark in "ms") + 1
    return lines[:start] + lines[end:]


def _next_mark(marks, index):
    """The mark of the next non-empty line after `index`."""
    index += 1
    while index < len(marks) and marks[index] == "e":
        index += 1
    return marks[index] if index < len(marks) else None


def _without_signature(lines):
    for index, line in enumerate(lines):
        if line in ("-- ", "--"):
            return lines[:index]
    return lines
