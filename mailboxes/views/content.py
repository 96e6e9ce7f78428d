"""How mail content leaves the server for a browser: the HTML body document, its policy, download names."""

import re
import unicodedata

from mailboxes.inbound.parsing import without_invisible_formatting

HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Directives that do not fall back to default-src, closed as well.
HTML_POLICY_EXTRA = "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
MAX_DOWNLOAD_NAME = 150
_REMOTE_IMAGE = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
_UNSAFE_NAME_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|;]+")


def email_html_policy(*, remote_images=False) -> str:
    images = "img-src data: https:" if remote_images else "img-src data:"
    return HTML_POLICY.replace("img-src data:", images) + "; " + HTML_POLICY_EXTRA


def email_html_document(html: str) -> str:
    """A whole document around the sanitised body; links open outside the frame, without a referrer."""
    return ('<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            '<base target="_blank"></head><body>' + (html or "") + "</body></html>")


def has_remote_images(html: str) -> bool:
    return bool(_REMOTE_IMAGE.search(html or ""))


def attachment_download_name(attachment) -> str:
    """The sender's filename without paths, control or quoting characters, hidden-file dots or excess length."""
    name = unicodedata.normalize("NFC", without_invisible_formatting(attachment.filename or ""))
    name = _UNSAFE_NAME_CHARACTERS.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")
    if len(name) > MAX_DOWNLOAD_NAME:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:20] if dot else ""
        name = (stem or name)[: MAX_DOWNLOAD_NAME - len(extension) - 1] + (f".{extension}" if extension else "")
    return name or f"attachment-{attachment.position + 1}"
