"""The project documents itself: every environment variable the settings read is described, the generated
pages of docs/ match the code, and every document a comment or page cites is in the repository."""

import re
from pathlib import Path

import pytest

from qmailing import docgen

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `python manage.py docs_generate` and commit the result"


def test_the_reader_finds_every_kind_of_read():
    source = (
        "import os\n"
        "A = env.str('ONE', '', help='first')\n"
        "B = env.int('TWO', 2 * 3)\n"
        "C = os.environ.get('THREE')\n"
        "D = os.environ['FOUR']\n"
        "E = os.getenv('FIVE', 'x')\n"
        "F = env.bool(NAME, True, help='no literal name')\n"
    )
    reads = {read.name: read for read in docgen.settings_reads(source)}
    assert set(reads) == {"ONE", "TWO", "THREE", "FOUR", "FIVE", "?"}
    assert reads["ONE"].help == "first" and reads["TWO"].help == ""
    assert reads["TWO"].default == "`6` (`2 * 3`)"


def test_every_variable_the_settings_read_has_a_description():
    reads = docgen.settings_reads()
    assert len(reads) > 80  # the reader sees the settings' reads at all
    unnamed = [f"line {read.line}" for read in reads if read.name == "?"]
    assert unnamed == [], f"settings read a variable whose name is not a string literal: {unnamed}"
    undescribed = [read.name for read in reads if len(read.help) < 10]
    assert undescribed == [], f"give these reads a help= text in qmailing/settings/__init__.py: {undescribed}"
    around_the_reader = [read.name for read in reads if read.kind == "environ"]
    assert around_the_reader == [], f"read these through core.env.env (with help=): {around_the_reader}"


def test_every_variable_the_settings_read_is_in_the_configuration_page():
    page = (ROOT / "docs/operations/configuration.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \|[^|]*\|[^|]*\| (.+) \|$", page, flags=re.M))
    missing = [read.name for read in docgen.settings_reads() if not rows.get(read.name, "").strip()]
    assert missing == [], f"not described in docs/operations/configuration.md: {missing}; {REGENERATE}"


@pytest.mark.parametrize("relative", sorted(docgen.PAGES))
def test_generated_page_is_up_to_date(relative):
    path = ROOT / relative
    assert path.exists(), f"{relative} is missing; {REGENERATE}"
    assert path.read_text() == docgen.PAGES[relative](), f"{relative} is out of date; {REGENERATE}"


def test_readme_tool_table_lists_every_tool_of_the_registry():
    from agent.operations import registry

    readme = (ROOT / "README.md").read_text()
    block = readme.split(docgen.README_TOOLS_START)[1].split(docgen.README_TOOLS_END)[0]
    listed = re.findall(r"^\| `(qmailing_[a-z_]+)` \|", block, flags=re.M)
    assert listed == list(registry()), f"README.md's tool table is out of date; {REGENERATE}"


def test_readme_without_the_table_markers_is_reported(monkeypatch, tmp_path):
    (tmp_path / "README.md").write_text("# A README without the markers\n")
    monkeypatch.setattr(docgen, "BASE_DIR", tmp_path)
    with pytest.raises(ValueError, match="markers"):
        docgen.readme_page()


def test_every_event_type_is_in_the_catalogue():
    values = [member.value for member in docgen.event_types()]
    assert sorted(values) == sorted(docgen.EVENTS), "qmailing.docgen.EVENTS must describe exactly the EventType members"


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


_CITATION = re.compile(r"\b(CONTRACT|CONVENTIONS|RELIABILITY)(\.md)?\s*§|\bRELIABILITY\.md\b|\bCONTRACT\.md\b|"
                       r"\bCONVENTIONS\.md\b")
_DOC_PATH = re.compile(r"\bdocs/[\w./-]+\.md\b")


def _code_files():
    for pattern in ("*.py", "*.html"):
        for path in ROOT.rglob(pattern):
            parts = path.relative_to(ROOT).parts
            if parts[0] in (".venv", ".git", ".cache", "var", "node_modules") or "site-packages" in parts:
                continue
            yield path


def test_comments_cite_only_documents_in_the_repository():
    outside, missing = [], []
    for path in _code_files():
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if _CITATION.search(line):
                outside.append(where)
            for cited in _DOC_PATH.findall(line):
                if not (ROOT / cited).exists():
                    missing.append(f"{where} cites {cited}")
    assert outside == [], f"these cite documents that are not in the repository: {outside}"
    assert missing == [], f"these cite documents that do not exist: {missing}"


def test_links_between_documents_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert broken == [], f"links to files that do not exist: {broken}"
