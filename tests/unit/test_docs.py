"""The documentation stays navigable: the README short, every relative link and anchor resolving,
and every `make` target and project path it shows existing."""

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DOCS = sorted([PROJECT / "README.md", PROJECT / "CHANGELOG.md", *(PROJECT / "docs").glob("*.md")])
README_MAX_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
MAKE = re.compile(r"(?:`|^)make ([a-z][a-z-]*)", re.M)
# A project path as the documents write it (`lab/labctl`, `tests/containers/test_faults.py`), not
# one inside another path (`build/lab/vm-pulumi.log`, `/var/lib/hapx/...`).
PATH = re.compile(r"(?<![\w/.~-])((?:agents|components|hapx|lab|scripts|templates|tests)/[\w./-]*\w)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = FENCE.sub("", doc.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def name(doc: Path) -> str:
    return str(doc.relative_to(PROJECT))


def test_the_readme_stays_short():
    lines = (PROJECT / "README.md").read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines: move detail into docs/"


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a URL: not this repository's
        path, _, anchor = target.partition("#")
        where = (doc.parent / path).resolve() if path else doc
        if not where.exists():
            broken.append(f"{target}: no file {where.relative_to(PROJECT)}")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading #{anchor} in {where.relative_to(PROJECT)}")
    assert not broken, f"{name(doc)}: " + "; ".join(broken)


def test_every_make_target_shown_exists():
    makefile = (PROJECT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    missing = {f"{name(doc)}: make {t}" for doc in DOCS for t in MAKE.findall(doc.read_text()) if t not in targets}
    assert not missing, sorted(missing)


def test_every_project_path_shown_exists():
    missing = {f"{name(doc)}: {p}" for doc in DOCS for p in PATH.findall(doc.read_text())
               if not (PROJECT / p).exists()}
    assert not missing, sorted(missing)
