"""PDFs written by hand (no PDF writer needed), for the extraction tests and bench/pdf_extraction.py."""

import zlib


def pdf_build(contents, *, page_count=None, compressed=False):
    """A PDF whose pages show the given content streams (Flate-compressed here unless `compressed`; Helvetica as /F1).

    With page_count, every one of that many pages shares the single stream in `contents`, so one
    small compressed stream is read once per page.
    """
    objects = [b"", b""]  # the catalog and the page tree, written last

    def add(body):
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    streams = []
    for content in contents:
        data = content if compressed else zlib.compress(content, 9)
        streams.append(add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)))
    if page_count is not None:
        streams = streams[:1] * page_count
    kids = [add(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (stream, font)) for stream in streams]
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % kid for kid in kids), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_pdf(lines_per_page, *, pages=1):
    """An ordinary document: `pages` pages of text lines; lines_per_page is a list of str (page n is prefixed)."""
    contents = []
    for page in range(1, pages + 1):
        body = [b"BT /F1 11 Tf 14 TL 72 740 Td"]
        body += [b"(%s) '" % f"Page {page}: {line}".encode("latin-1") for line in lines_per_page]
        contents.append(b"\n".join(body + [b"ET"]))
    return pdf_build(contents)


def ordinary_pdf(pages=20):
    return text_pdf([f"line {n}: the quarterly figures for the northern region look healthy" for n in range(45)],
                    pages=pages)


def operator_flood_pdf(operators=950_000, *, pages=10, string=b""):
    """The reported attack: `pages` pages sharing one Flate stream of `operators` `(string) Tj` operators.

    950,000 empty strings make a ~10 KB file; with a character in the string every operator also
    yields text, which is what makes a reader's memory grow.
    """
    return pdf_build([b"BT /F1 12 Tf 72 720 Td " + b"(%s) Tj " % string * operators + b"ET"], page_count=pages)


def inflation_bomb_pdf(inflated_bytes=600 * 1024 * 1024):
    """One stream of spaces that inflates to `inflated_bytes` from under a thousandth of that."""
    deflater, chunk = zlib.compressobj(9), b" " * (1 << 20)
    data = b"".join(deflater.compress(chunk) for _ in range(inflated_bytes >> 20)) + deflater.flush()
    return pdf_build([data], compressed=True)
