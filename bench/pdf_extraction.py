"""PDF text extraction: pypdfium2 (PDFium) against pypdf, on hostile and ordinary PDFs.

Usage: python bench/pdf_extraction.py [--operators 950000] [--pages 50] [--runs 3] [--timeout 300] [--small]
Each extraction runs in a fresh process (the first 50 pages, as the worker reads them), so its wall
time and peak memory (ru_maxrss from wait4) are its own; a run past --timeout is killed and shown as
such. The documents are built here: the reported attack (ten pages sharing one Flate stream of
--operators `() Tj` operators), the same with one character per string (every operator yields
text), a stream that inflates to --inflate-mb MB, and an ordinary --pages page text document. Then the
production path, extraction.pdf_text (pypdfium2 in a child under PdfLimits), on the same files.
pypdf is not a requirement any more; without it its rows say so (pip install pypdf==7.1.0 to compare).
--small is what bench/smoke runs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qmailing.settings")

MAX_PAGES = 50  # what the worker reads (extraction.PdfLimits.max_pages)


def child(library, path):
    """Run inside the measured process: extract, print characters and pages as JSON."""
    data = Path(path).read_bytes()
    if library == "pypdf":
        import io
        import logging

        import pypdf

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        texts = [page.extract_text() or "" for page in reader.pages[:MAX_PAGES]]
    else:
        import pypdfium2

        document = pypdfium2.PdfDocument(data)
        texts = []
        for index in range(min(len(document), MAX_PAGES)):
            textpage = document[index].get_textpage()
            texts.append(textpage.get_text_range())
    print(json.dumps({"chars": sum(map(len, texts)), "pages": len(texts)}))


def measure(library, path, timeout):
    """(seconds, peak MB, outcome) of one extraction in a fresh process."""
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--child", library, path], stdout=output, stderr=errors)
        killed = False
        while True:
            # wait4 reaps the child with its own resource usage (peak resident set in KB on Linux).
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout and not killed:
                process.kill()
                killed = True
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0), errors.seek(0)
        answer, last = output.read(), errors.read().decode(errors="replace").strip().splitlines()[-1:]
    if killed:
        outcome = f"killed after {timeout:g} s"
    elif process.returncode != 0:
        outcome = "error: " + (last[0][:60] if last else f"exit {process.returncode}")
    else:
        answer = json.loads(answer)
        outcome = f"{answer['chars']:,} chars from {answer['pages']} pages"
    return seconds, usage.ru_maxrss / 1024, outcome


def available(library):
    try:
        __import__(library)
        return True
    except ImportError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operators", type=int, default=950_000, help="`() Tj` operators in the hostile stream")
    parser.add_argument("--pages", type=int, default=50, help="pages of the ordinary document")
    parser.add_argument("--inflate-mb", type=int, default=600, help="what the bomb's stream inflates to")
    parser.add_argument("--runs", type=int, default=3, help="runs per ordinary document (median shown)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a run is killed")
    parser.add_argument("--small", action="store_true",
                        help="CI size: 20,000 operators, 5 pages, a 200 MB bomb, 1 run, 60 s")
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "PATH"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        return child(*options.child)
    if options.small:
        options.operators, options.pages, options.inflate_mb, options.runs, options.timeout = 20_000, 5, 200, 1, 60

    from tests.mailboxes.inbound.pdfs import inflation_bomb_pdf, operator_flood_pdf, ordinary_pdf

    documents = [
        ("hostile: 10 pages share one stream of () Tj", operator_flood_pdf(options.operators), 1),
        ("hostile: the same with (x) Tj", operator_flood_pdf(options.operators, string=b"x"), 1),
        (f"hostile: a stream inflating to {options.inflate_mb} MB", inflation_bomb_pdf(options.inflate_mb << 20), 1),
        (f"ordinary: {options.pages} pages of text", ordinary_pdf(options.pages), options.runs),
    ]
    import pypdfium2

    print(f"pypdfium2 {pypdfium2.version.PYPDFIUM_INFO} (PDFium {pypdfium2.version.PDFIUM_INFO.build}); "
          f"pypdf {__import__('pypdf').__version__ if available('pypdf') else 'not installed'}; "
          f"first {MAX_PAGES} pages, each run in a fresh process")
    print(f"{'document':46} {'bytes':>8}  {'library':10} {'seconds':>8} {'peak MB':>8}  outcome")
    with tempfile.TemporaryDirectory(prefix="qmailing-bench-pdf-") as folder:
        for name, data, runs in documents:
            path = str(Path(folder) / "document.pdf")
            Path(path).write_bytes(data)
            for library in ("pypdf", "pypdfium2"):
                if not available(library):
                    print(f"{name:46} {len(data):>8}  {library:10} {'-':>8} {'-':>8}  not installed")
                    continue
                results = [measure(library, path, options.timeout) for _ in range(runs)]
                seconds = statistics.median(r[0] for r in results)
                peak = max(r[1] for r in results)
                print(f"{name:46} {len(data):>8}  {library:10} {seconds:>8.2f} {peak:>8.0f}  {results[-1][2]}",
                      flush=True)

        import django

        django.setup()
        from mailboxes.inbound.extraction import PDF_LIMITS, pdf_text

        print(f"\nproduction path: extraction.pdf_text, pypdfium2 in a child with {PDF_LIMITS}")
        for name, data, _ in documents:
            started = time.perf_counter()
            result = pdf_text(data)
            seconds = time.perf_counter() - started
            detail = f" ({result.detail})" if result.detail else ""
            print(f"{name:46} {len(data):>8}  {seconds:>6.2f} s  {result.state}, {len(result.text):,} chars{detail}")


if __name__ == "__main__":
    main()
