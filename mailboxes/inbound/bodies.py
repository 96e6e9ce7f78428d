"""Mail bodies: sanitised HTML, invisible padding, snippets (the text of HTML mail is in html_text.py)."""

import re

import nh3

# The reply cutter lives in replies.py; parse_message imports it from here with the other body helpers.
from mailboxes.inbound.replies import text_without_quotes  # noqa: F401

SNIPPET_LENGTH = 200

# Email layout lives in inline styles; only these properties survive (no url(), no positioning).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "text-align", "text-decoration", "text-transform", "line-height", "letter-spacing", "vertical-align",
    "white-space", "width", "max-width", "min-width", "height", "margin", "margin-top", "margin-right",
    "margin-bottom", "margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-width", "border-style", "border-collapse", "border-spacing", "border-radius", "display",
}
_TAGS = nh3.ALLOWED_TAGS | {"font", "tfoot"}
_ATTRIBUTES = {**{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
               "*": {"style", "dir", "lang", "title"}, "font": {"color", "face", "size"},
               "table": {"align", "width", "cellpadding", "cellspacing", "border", "bgcolor", "summary"},
               "td": {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan"}}
# cid: lets inline images point at the message's own attachments; no data:, no javascript:.
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_CLEAN_CONTENT = {"script", "style", "title", "head", "noscript", "template", "object", "embed", "applet", "iframe"}
_MAX_PASSES = 4
# Old-browser style tricks (IE expression(), behaviours, CSS escapes hiding them) drop the whole style.
_RISKY_STYLE = re.compile(r"expression|behavior|url\s*\(|javascript|vbscript|@import|\\|-moz-binding", re.IGNORECASE)


def _attribute_filter(element, attribute, value):
    if attribute == "style" and _RISKY_STYLE.search(value):
        return None
    return value


# html5ever's cost grows with the square of the open-element depth: 20,000 nested <div>s take seconds.
MAX_HTML_DEPTH = 1000
_TAG_START = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)")
_NOT_NESTING = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed", "param", "source",
                "track", "wbr", "p", "li", "dd", "dt", "td", "th", "tr", "option", "span", "font", "b", "i", "u",
                "a", "em", "strong", "small"}


def html_too_deep(html, *, limit=MAX_HTML_DEPTH):
    """True when the HTML nests block elements deeper than `limit` (an estimate from the tags alone)."""
    # A tag runs to the next ">". Scanning on from there keeps this linear: a regex looking for each
    # tag's ">" rescans the rest of the input from every "<" when there is none ("<a<a<a…").
    depth = position = 0
    while match := _TAG_START.search(html, position):
        end = html.find(">", match.end())
        if end < 0:
            return False
        position = end + 1
        closing, name = match.groups()
        if html[end - 1] == "/" or name.lower() in _NOT_NESTING:
            continue
        depth = max(depth - 1, 0) if closing else depth + 1
        if depth > limit:
            return True
    return False


def html_sanitize(html):
    """nh3-clean HTML until it no longer changes, so sanitising twice always equals once."""
    cleaned = html or ""
    for _ in range(_MAX_PASSES):
        again = nh3.clean(cleaned, tags=_TAGS, clean_content_tags=_CLEAN_CONTENT, attributes=_ATTRIBUTES,
                          url_schemes=_URL_SCHEMES, attribute_filter=_attribute_filter, filter_style_properties=_STYLE_PROPERTIES)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def _padding_table():
    removed = [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x200B, 0x200C, 0x200E, 0x200F, 0x3164,
               0xFEFF, 0xFFA0, *range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0), *range(0x180B, 0x1810),
               *range(0x202A, 0x202F), *range(0x2060, 0x2070), *range(0xFFF9, 0xFFFC), *range(0x1D173, 0x1D17B),
               *range(0xE0000, 0xE0080), *range(0xE0100, 0xE01F0)]
    spaces = [0x00A0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x2800, 0x3000, *range(0x2000, 0x200B)]
    return {**{code: None for code in removed}, **{code: " " for code in spaces}}


# Characters that show nothing, or only blank space, and pad preheaders so inboxes preview no body text:
# soft hyphens, zero-width and bidi marks, U+034F (&#847;), Hangul and braille fillers, "tag" characters
# (which smuggle text invisibly), controls; odd spaces (&nbsp;, U+2007…) become plain ones.
PADDING = _padding_table()
# A zero-width joiner holds emoji sequences together; anywhere else it is padding too.
_STRAY_JOINER = re.compile("(?<![\u2100-\U0010ffff])\u200d|\u200d(?![\u2100-\U0010ffff])")
_REFERENCE = re.compile(r" \[(\d{1,4})\]")


def without_padding(text):
    """The text without invisible padding characters, odd spaces made plain (PADDING)."""
    text = text.translate(PADDING)
    return _STRAY_JOINER.sub("", text) if "\u200d" in text else text


def snippet_from(text, *, links=None):
    """The first words of a message: invisible padding skipped and, for text made from HTML, the "[n]"
    numbers of `links` left out."""
    # Only the head of the text can reach the snippet; collapsing all of a long body would be wasted work.
    head = without_padding((text or "")[:SNIPPET_LENGTH * 40])
    if links:
        head = _REFERENCE.sub(lambda match: "" if match.group(1) in links else match.group(0), head)
    return re.sub(r"\s+", " ", head).strip()[:SNIPPET_LENGTH]
