"""Mail bodies: sanitised HTML, HTML turned into readable text, reply text without quoted history."""

import re
from html.parser import HTMLParser

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
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>")
_NOT_NESTING = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed", "param", "source",
                "track", "wbr", "p", "li", "dd", "dt", "td", "th", "tr", "option", "span", "font", "b", "i", "u",
                "a", "em", "strong", "small"}


def html_too_deep(html, *, limit=MAX_HTML_DEPTH):
    """True when the HTML nests block elements deeper than `limit` (an estimate from the tags alone)."""
    depth = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _NOT_NESTING:
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


_BLOCK_TAGS = {"p", "div", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
               "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd", "center"}
_SKIP_TAGS = {"script", "style", "head", "title", "noscript", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip_depth, self.links = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        if tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip_depth = max(self.skip_depth - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.parts[start:]).strip()
            # Keep the link target next to its label, unless the label already is the target.
            if href and not href.lower().startswith("javascript:") and href.strip() not in (label, f"mailto:{label}"):
                self.parts.append(f" ({href.strip()})")

    def handle_data(self, data):
        if not self.skip_depth:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html):
    """Readable plain text for an HTML body, with links kept as "label (url)"."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html or "")
        extractor.close()
    except Exception:  # html.parser is lenient, but the input is hostile; keep what was read
        pass
    text = "".join(extractor.parts)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()




def snippet_from(text):
    # Only the head of the text can reach the snippet; collapsing all of a long body would be wasted work.
    return re.sub(r"\s+", " ", (text or "")[:SNIPPET_LENGTH * 4]).strip()[:SNIPPET_LENGTH]
