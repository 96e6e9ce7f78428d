"""Searchable text from attachments: text/* as decoded, PDFs through pypdf within hard caps."""

import io
import logging

from mailboxes.inbound.parsing import clean_text

MAX_EXTRACTED_CHARS = 100_000
MAX_PDF_PAGES = 50
MAX_PDF_BYTES = 10 * 1024 * 1024

logger = logging.getLogger(__name__)
# pypdf warns about every oddity of a broken PDF; those are the sender's problem, not ours.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def attachment_text(*, content_type, data, text=""):
    """Text for search and previews; "" when the type has none or the file cannot be read."""
    if content_type.startswith("text/"):
        return text[:MAX_EXTRACTED_CHARS]
    if content_type == "application/pdf" or data[:5] == b"%PDF-":
        return pdf_text(data)
    return ""


def pdf_text(data):
    """Text of the first MAX_PDF_PAGES pages, at most MAX_EXTRACTED_CHARS characters.

    A PDF is attacker-controlled input: every failure (broken xref, recursion, decompression trouble)
    just means no text.
    """
    if len(data) > MAX_PDF_BYTES:
        return ""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return ""
        chunks, total = [], 0
        for index, page in enumerate(reader.pages):
            if index >= MAX_PDF_PAGES or total >= MAX_EXTRACTED_CHARS:
                break
            chunk = page.extract_text() or ""
            chunks.append(chunk)
            total += len(chunk)
        return clean_text("\n".join(chunks))[:MAX_EXTRACTED_CHARS]
    except Exception:  # includes RecursionError and MemoryError raised by hostile files
        logger.info("PDF text extraction failed", exc_info=True)
        return ""
