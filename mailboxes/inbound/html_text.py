"""The text of an HTML-only message: what its reader sees, compact enough to hand to a model.

A newsletter is mostly markup and tracking URLs; its text keeps the words and cites each link by number
("Shop the sale [3]"), the URLs listed once beside it ({"3": "https://…"}, one number per distinct URL).
Anchors next to each other that lead to the same URL are one link: a product's image and its name,
both linked, read "Linen Shirt [7]" once (the image's alt text is dropped beside the words), and two
labels of one target share one citation. A citation is followed by a space before the next words, so
links in a row read "Women [3] Men [4]", never "Women [3]Men [4]".
What a mail client does not show stays out: script and style, elements hidden by inline style
(display:none, visibility:hidden, opacity:0, zero height with overflow:hidden, 1px text), open-tracking
pixels, images without alt text, invisible padding (zero-width characters, U+034F, soft hyphens,
&nbsp; runs). The exception is the preheader, the hidden summary at the top that inboxes show beside
the subject: its words open the text, its padding does not. Layout tables become plain lines (cells of
one line joined by " | "), headings and paragraphs are blocks, list items keep "- " or "1. ", quotes
keep "> ". Only http(s) links are numbered; a mailto: link shows its address; other schemes are text.

The markup is first put through html5ever (nh3, as for display, but keeping every inline style): it
settles unclosed and misnested tags, comments and entities as a browser does, and the one-pass tag
reader below then reads its output exactly. (html.parser was not kept: it is quadratic on malformed
input such as "<a<a<a…".) HTML nested deep enough to make html5ever slow (html_too_deep) goes to the
same reader raw, which reads it well enough for text. Hiding by class names in <style> sheets, and
text coloured like its background, are not detected.
"""

import re
from html import unescape
from typing import NamedTuple
from urllib.parse import quote, unquote

import nh3

from mailboxes.inbound.bodies import PADDING, html_too_deep, without_padding

MAX_TEXT_CHARS = 2_000_000
MAX_LINKS = 500
MAX_URL_CHARS = 4096
MAX_TAGS = 200_000  # ten times as many as a 2 MB newsletter has; past it the rest is not read
MAX_ALT_CHARS = 300
PREHEADER_MAX_CHARS = 300
# A hidden block counts as the preheader only near the top (a "view in browser" line may come first).
_PREHEADER_WINDOW = 200
_MAX_NESTED_MARKERS = 8  # list indentation and "> " quote marks stop growing here
_MAX_STYLE_CHARS = 4000

_NOT_TEXT = {"script", "style", "title", "head", "noscript", "template", "object", "embed", "applet", "iframe"}
_TAGS = (nh3.ALLOWED_TAGS | {"font", "tfoot", "main", "section", "address", "big", "label"}) - _NOT_TEXT
_ATTRIBUTES = {"*": {"style", "hidden"}, "a": {"href"}, "img": {"alt", "width", "height"}, "ol": {"start"}}
_VOID = {"br", "img", "hr", "wbr", "col", "area", "input", "meta", "link", "source", "track", "embed", "param", "base"}
_BLOCKS = {"div", "tr", "dt", "dd", "figure", "figcaption", "header", "footer", "nav", "aside", "center", "main",
           "section", "article", "details", "summary", "caption", "address", "thead", "tbody", "tfoot", "hgroup"}
_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "dl"}

_HIDDEN, _TINY, _INVISIBLE, _PREHEADER = 1, 2, 4, 8
_NOT_SHOWN = _HIDDEN | _TINY | _INVISIBLE
_LENGTH = re.compile(r"\s*(-?\d*\.?\d+)\s*([a-z%]*)")
_STYLE_NAMES = {"display", "visibility", "opacity", "font-size", "height", "max-height", "width", "max-width", "overflow"}
_URL_NOISE = re.compile(r"[\x00-\x1f\x7f]+")  # browsers drop tabs and newlines inside URLs
_HTTP_URL = re.compile(r"https?://[^\s/?#]", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s@<>()\[\]\",;:]{1,64}@[^\s@<>()\[\]\",;:]{1,253}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
# Tags, and <!…> declarations. html5ever's output escapes "<" and ">" everywhere but in tags, so this
# reads it exactly; raw HTML (nested too deep for html5ever) it reads well enough, and always in one pass.
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)([^<>]*)>|<![^<>]*>")
_ATTRIBUTE = re.compile(r"""([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`]+)))?""")


class HtmlText(NamedTuple):
    text: str
    links: dict  # number (str) → http(s) URL, cited in `text` as "[n]"


def html_to_text_with_links(html) -> HtmlText:
    """The readable text of an HTML body and the links it cites by number. Linear in the input, never raises."""
    html = html or ""
    converter = _Converter()
    try:
        if html_too_deep(html):
            converter.read(html, unescape)
        else:
            converter.read(nh3.clean(html, tags=_TAGS, clean_content_tags=_NOT_TEXT, attributes=_ATTRIBUTES,
                                     url_schemes={"http", "https", "mailto"}, link_rel=None, strip_comments=True),
                           _unescape_serialized)
    except _Full:
        pass
    except Exception:  # the input is hostile: keep what was read rather than lose the message's text
        pass
    return converter.result()


class _Full(Exception):
    pass


class _Cited(NamedTuple):
    target: str
    start: int  # out[start:end] is the label and its citation, the last piece
    end: int
    words: str
    has_words: bool  # more than image alt text


def _words(value):
    """Text with the invisible padding gone and whitespace collapsed (leading/trailing spaces dropped)."""
    return " ".join(without_padding(value).split())


def _length(value):
    """(number, unit) of a CSS or attribute length, or None."""
    match = _LENGTH.match(value or "")
    if not match:
        return None
    try:
        return float(match.group(1)), match.group(2)
    except ValueError:
        return None


def _is_zero(value):
    length = _length(value)
    return length is not None and length[0] == 0


def _style(value):
    declarations = {}
    for declaration in value[:_MAX_STYLE_CHARS].split(";"):
        name, _, setting = declaration.partition(":")
        name = name.strip().lower()
        if name in _STYLE_NAMES:
            declarations[name] = setting.lower().replace("!important", "").strip()
    return declarations


def _flags(parent, attrs):
    """The element's visibility: hidden for good, or tiny/invisible text that a descendant may undo."""
    if not attrs:
        return parent
    flags = parent
    if "hidden" in attrs:
        flags |= _HIDDEN
    style = _style(attrs.get("style") or "")
    if not style:
        return flags
    clipped = style.get("overflow", "") in ("hidden", "clip")
    if (style.get("display") == "none" or _is_zero(style.get("opacity"))
            or (clipped and any(_is_zero(style.get(name)) for name in ("height", "max-height", "width", "max-width")))):
        flags |= _HIDDEN
    visibility = style.get("visibility")
    if visibility in ("hidden", "collapse"):
        flags |= _INVISIBLE
    elif visibility == "visible":
        flags &= ~_INVISIBLE
    size = _length(style.get("font-size"))
    if size is not None:
        number, unit = size
        tiny = number <= 0 or (unit in ("px", "pt", "") and number <= 1) or (unit in ("em", "rem") and number <= 0.1)
        flags = flags | _TINY if tiny else flags & ~_TINY
    # mso-hide:all alone is left shown: it hides only in desktop Outlook, every other reader sees the element.
    return flags


def _is_pixel(attrs):
    """An image one pixel (or none) wide or high: a tracking pixel or a spacer."""
    style = _style(attrs.get("style") or "")
    for value in (attrs.get("width"), attrs.get("height"), style.get("width"), style.get("height")):
        length = _length(value)
        if length is not None and length[0] <= 1 and length[1] in ("", "px"):
            return True
    return False


def _link_target(href):
    """("url", http(s) URL) or ("mail", address), or None for every other link (javascript:, data:, relative…)."""
    href = _URL_NOISE.sub("", href or "").strip()
    if not href or len(href) > MAX_URL_CHARS:
        return None
    if _HTTP_URL.match(href):
        if not href.isascii() or " " in href:
            href = "".join(quote(char) if char.isspace() or ord(char) in PADDING else char for char in href)
        return "url", href
    if href[:7].lower() == "mailto:":
        address = unquote(href[7:].split("?", 1)[0]).strip()
        if _ADDRESS.fullmatch(address) and address == address.translate(PADDING):
            return "mail", address
    return None


def _unescape_serialized(text):
    """The entities html5ever writes, and only those: one C-speed pass each, no per-entity callback."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&nbsp;", "\xa0") \
        .replace("&amp;", "&")


def _attributes(text, decode):
    attributes = {}
    for match in _ATTRIBUTE.finditer(text):
        name, double, single, bare = match.groups()
        value = double if double is not None else single if single is not None else bare or ""
        attributes.setdefault(name.lower(), decode(value) if "&" in value else value)
    return attributes


class _Converter:
    def __init__(self):
        self.out, self.size = [], 0
        self.started = self.line_has_content = self.pending_space = self.pending_cell = False
        self.pending_break = 0
        self.marker = ""  # a list item's "- " or "3. ", written with its first words
        self.stack, self.open_counts = [], {}
        self.lists, self.quote_depth, self.pre_depth = [], 0, 0
        self.link = None  # (target, index in out where its label starts, stack depth)
        self.link_has_words = False  # whether the open link's label holds more than image alt text
        self.last_link = None  # the previous cited link, while nothing has been written after it: _Cited
        self.after_citation = False  # the last thing written was a citation "[n]"
        self.numbers, self.links = {}, {}
        self.preheader, self.preheader_done = [], False

    # Output. Breaks, spaces and cell separators wait for the next words, so none is ever left dangling.

    def _write(self, text):
        out = self.out
        if self.pending_break and self.started:
            out.append("\n" * self.pending_break)
            self.line_has_content = False
        elif self.line_has_content:
            if self.pending_cell:
                out.append(" | ")
            elif self.pending_space or (self.after_citation and text[:1].isalnum()):
                out.append(" ")  # and after a citation: "Women [3] Men [4]", not "Women [3]Men [4]"
        if not self.line_has_content:
            quotes = min(self.quote_depth, _MAX_NESTED_MARKERS)
            if quotes:
                out.append("> " * quotes)
            if self.marker:
                out.append("  " * min(len(self.lists) - 1, _MAX_NESTED_MARKERS) + self.marker)
                self.marker = ""
        self.pending_break, self.pending_space, self.pending_cell = 0, False, False
        self.after_citation = False
        if self.last_link is not None and self.link is None:
            self.last_link = None  # words between two links: they are no longer next to each other
        out.append(text)
        self.started = self.line_has_content = True
        self.size += len(text) + 3  # about: separators and markers counted as three
        if self.size > MAX_TEXT_CHARS:
            raise _Full

    def _break(self, lines):
        self.pending_break = max(self.pending_break, lines)
        self.pending_cell = False

    def _text(self, data):
        value = without_padding(data)
        if value[:1].isspace():
            self.pending_space = True
        words = " ".join(value.split())
        if words:
            self.link_has_words = True
            self._write(words)
            if value[-1:].isspace():
                self.pending_space = True
        elif value:
            self.pending_space = True

    def _preformatted(self, data):
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for number, line in enumerate(lines):
            if number:
                self.pending_break = min(self.pending_break + 1, 2) if self.started else 0
                self.line_has_content = False
            line = without_padding(line)
            if line.strip():
                self.pending_space = False
                self.link_has_words = True
                self._write(line)

    # Elements.

    def handle_starttag(self, tag, attrs):
        parent = self.stack[-1][1] if self.stack else 0
        flags = _flags(parent, attrs)
        if tag in _VOID:
            if not flags & (_HIDDEN | _INVISIBLE):  # an image shows in 0px text (layouts use font-size:0)
                self._void(tag, attrs)
            return
        if (flags & ~parent & _NOT_SHOWN and not parent & _PREHEADER and not self.preheader_done
                and self.size < _PREHEADER_WINDOW):
            flags |= _PREHEADER
        self.stack.append((tag, flags))
        self.open_counts[tag] = self.open_counts.get(tag, 0) + 1
        if tag in ("ul", "ol"):
            start = _length(attrs.get("start")) if tag == "ol" else None
            self.lists.append([tag, int(start[0]) - 1 if start and abs(start[0]) < 1e9 else 0])
        elif tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        if flags & _NOT_SHOWN:
            return
        if tag in _PARAGRAPHS or (tag in ("ul", "ol") and len(self.lists) == 1):
            self._break(2)
        elif tag in _BLOCKS or tag in ("ul", "ol"):
            self._break(1)
        elif tag == "li":
            self._break(1)
            if self.lists:
                self.lists[-1][1] += 1
                kind, count = self.lists[-1]
                self.marker = f"{count}. " if kind == "ol" else "- "
            else:
                self.marker = "- "
        elif tag in ("td", "th"):
            if self.line_has_content and not self.pending_break:
                self.pending_cell = True
        elif tag == "a":
            if self.link:
                self._finish_link()
            target = _link_target(attrs.get("href"))
            if target:
                self.link = (target, len(self.out), len(self.stack))
                self.link_has_words = False

    def _void(self, tag, attrs):
        if tag == "br":
            if self.started:
                self.pending_break = min(self.pending_break + 1, 2)
            self.pending_cell = False
        elif tag == "hr":
            self._break(2)
        elif tag == "img" and not _is_pixel(attrs):
            alt = _words(attrs.get("alt") or "")[:MAX_ALT_CHARS]
            if alt:
                self.pending_space = True
                self._write(alt)
                self.pending_space = True

    def handle_endtag(self, tag):
        if tag in _VOID or not self.open_counts.get(tag):
            return
        while self.stack:
            name, flags = self.stack.pop()
            self.open_counts[name] -= 1
            self._close(name, flags)
            if name == tag:
                break

    def _close(self, tag, flags):
        if tag in ("ul", "ol"):
            self.lists.pop()
        elif tag == "blockquote":
            self.quote_depth -= 1
        elif tag == "pre":
            self.pre_depth -= 1
        if self.link and self.link[2] > len(self.stack):
            self._finish_link()
        if flags & _PREHEADER and not (self.stack and self.stack[-1][1] & _PREHEADER):
            self.preheader_done = bool(_words("".join(self.preheader)))
            if not self.preheader_done:
                self.preheader = []
        if flags & _NOT_SHOWN:
            return
        if tag in _PARAGRAPHS or (tag in ("ul", "ol") and not self.lists):
            self._break(2)
        elif tag in _BLOCKS or tag in ("ul", "ol", "li"):
            self._break(1)

    def handle_data(self, data):
        if self.stack and self.stack[-1][1] & _NOT_SHOWN:
            # Collected only near the top: a hidden block further down is not what inboxes preview.
            if self.stack[-1][1] & _PREHEADER and self.size < _PREHEADER_WINDOW \
                    and sum(map(len, self.preheader)) < PREHEADER_MAX_CHARS * 20:
                self.preheader.append(data)
            return
        if self.pre_depth:
            self._preformatted(data)
        else:
            self._text(data)

    def _finish_link(self):
        (kind, target), start, _ = self.link
        self.link = None
        label = "".join(self.out[start:])
        previous, self.last_link = self.last_link, None
        if not label.strip():
            self.last_link = previous  # nothing shown (an image without alt text): the previous link stays next
            return
        if kind == "mail":
            if target.lower() not in label.lower():
                self.out.append(f" ({target})")
                self.size += len(target) + 3
            return
        words = " ".join(label.split()).lower()
        if previous is not None and previous.target == target:
            if words == previous.words or (previous.has_words and not self.link_has_words):
                self._blank(start, len(self.out))  # the same words again, or an image beside its words
                self.last_link, self.after_citation = previous, True
                return
            if not previous.has_words and self.link_has_words:
                self._drop_before(previous, start)  # the image's alt text, now that the words follow
            elif "\n" not in label[:len(label) - len(label.lstrip())]:
                self.out[previous.end - 1] = ""  # two labels of one link on one line: one citation, after both
        number = self.numbers.get(target)
        if number is None and len(self.numbers) < MAX_LINKS:
            number = self.numbers[target] = len(self.numbers) + 1
            self.links[str(number)] = target
        if number is not None:
            self.out.append(f" [{number}]")
            self.size += 6
            self.after_citation = True
            self.last_link = _Cited(target, start, len(self.out), words, self.link_has_words)

    def _drop_before(self, previous, start):
        """Drop the label of `previous` (just before out[start:]) but not the break and list marker that open it:
        the words that follow take its place on the page, with the larger of the two breaks."""
        before, after = self._separator(previous.start, previous.end), self._separator(start, len(self.out))
        if before is not None and after is not None:
            if self.out[after].count("\n") > self.out[before].count("\n"):
                self.out[before] = self.out[after]
            self.out[after] = ""
        self._blank(previous.start, previous.end, keep=before)

    def _separator(self, start, end):
        """The index of the first piece in out[start:end] if it is a separator (whitespace), else None."""
        for index in range(start, end):
            if self.out[index]:
                return index if not self.out[index].strip() else None
        return None

    def _blank(self, start, end, keep=None):
        """Empty the pieces out[start:end] of a dropped label and its citation, but not out[keep] nor the list
        markers and quote marks among them, which belong to the line: the only pieces that end with a space
        and are not all spaces (words are written stripped; a <pre> line ending in a space stays too)."""
        out = self.out
        for index in range(start, end):
            piece = out[index]
            if index != keep and not (piece[-1:] == " " and piece.strip()):
                out[index] = ""

    def read(self, html, decode):
        """Read tags and text in one pass (entities decoded by `decode`); script, style and the like are skipped."""
        skipping, position = None, 0
        for count, match in enumerate(_TAG.finditer(html)):
            if not skipping and match.start() > position:
                self._data(html[position:match.start()], decode)
            position = match.end()
            closing, name, attributes = match.groups()
            if count > MAX_TAGS:
                return
            if not name:
                continue
            name = name.lower()
            if skipping == "head" and name == "body":
                skipping = None  # a raw document that never closed its <head>
            if skipping:
                skipping = None if closing and name == skipping else skipping
            elif name in _NOT_TEXT:
                skipping = None if closing or attributes.rstrip().endswith("/") else name
            elif closing:
                self.handle_endtag(name)
            else:
                self.handle_starttag(name, _attributes(attributes, decode) if attributes.strip() else {})
        if not skipping and position < len(html):
            self._data(html[position:], decode)

    def _data(self, text, decode):
        self.handle_data(decode(text) if "&" in text else text)

    def result(self):
        if self.link:
            self._finish_link()
        text = _TRAILING_SPACE.sub("\n", "".join(self.out)).strip("\n").rstrip()[:MAX_TEXT_CHARS]
        preheader = _words("".join(self.preheader))
        if len(preheader) > PREHEADER_MAX_CHARS:
            preheader = preheader[:PREHEADER_MAX_CHARS].rsplit(" ", 1)[0] + " …"
        if preheader and not text.startswith(preheader):
            text = f"{preheader}\n\n{text}" if text else preheader
        return HtmlText(text=text, links=self.links)
