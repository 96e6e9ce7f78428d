"""The child process that reads a PDF's text; run by mailboxes.inbound.extraction.pdf_text, never imported.

    python -I pdf_child.py MAX_PAGES MAX_CHARS MAX_INFLATED_BYTES CPU_SECONDS MEMORY_BYTES < file.pdf

It lowers its own resource limits before it reads a byte, so a hostile document can spend at most
CPU_SECONDS of CPU and MEMORY_BYTES of address space (the kernel ends the process beyond either; the
parent adds a wall-clock limit). It prints one JSON object: {"text", "pages", "limited"} (limited
names the limits that cut the text short) or {"error"}. Only the standard library and pypdfium2,
so it starts in a few milliseconds and carries none of the server's settings or secrets.
"""

import json
import re
import resource
import sys
import zlib

# A stream keyword that opens data (not the end of one), and how far back its dictionary may start.
_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_DICTIONARY_WINDOW = 4096
_READ_STEP, _INFLATE_STEP = 1 << 16, 1 << 20


def limit_resources(*, cpu_seconds, memory_bytes):
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # its only output is the answer on the stdout pipe
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def inflated_size(data, *, budget):
    """Bytes the document's Flate streams inflate to, counted in steps and given up once past `budget`.

    Runs before PDFium sees the file, so a decompression bomb is refused by name instead of by the
    memory limit. Image streams are skipped (text extraction never decodes them); a stream this scan
    cannot read (other filters, names written with # escapes) is still held by the memory limit.
    """
    total, view = 0, memoryview(data)  # slices of a memoryview copy nothing, however many streams there are
    for match in _STREAM.finditer(data):
        head = data[max(0, match.start() - _DICTIONARY_WINDOW):match.start()]
        head = head[max(0, head.rfind(b"obj")):]
        if b"/Image" in head:
            continue
        inflater, offset = zlib.decompressobj(), match.end()
        try:
            while offset < len(data) and not inflater.eof:
                pending, offset = view[offset:offset + _READ_STEP], offset + _READ_STEP
                while pending and not inflater.eof:
                    total += len(inflater.decompress(pending, _INFLATE_STEP))
                    if total > budget:
                        return total
                    pending = inflater.unconsumed_tail
        except zlib.error:
            continue  # not Flate data, or broken: nothing PDFium will inflate either
    return total


def page_texts(data, *, max_pages, max_chars):
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    chunks, total, limited = [], 0, []
    count = len(document)
    for index in range(min(count, max_pages)):
        page = document[index]
        textpage = page.get_textpage()
        wanted = min(textpage.count_chars(), max_chars - total + 1)  # one more shows the page went on
        chunk = textpage.get_text_range(0, wanted) if wanted > 0 else ""
        textpage.close()
        page.close()
        chunks.append(chunk)
        total += len(chunk) + 1  # and the line break that joins it to the next page
        if total > max_chars:
            limited.append("chars")
            break
    else:
        if count > max_pages:
            limited.append("pages")
    return {"text": "\n".join(chunks)[:max_chars], "pages": len(chunks), "limited": limited}


def main(argv):
    max_pages, max_chars, max_inflated, cpu_seconds, memory_bytes = (int(value) for value in argv[1:6])
    limit_resources(cpu_seconds=cpu_seconds, memory_bytes=memory_bytes)
    data = sys.stdin.buffer.read()
    try:
        if inflated_size(data, budget=max_inflated) > max_inflated:
            answer = {"error": f"streams inflate past {max_inflated} bytes"}
        else:
            answer = page_texts(data, max_pages=max_pages, max_chars=max_chars)
    except Exception as exc:  # a broken or password-protected file, or MemoryError at the limit
        answer = {"error": type(exc).__name__}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
