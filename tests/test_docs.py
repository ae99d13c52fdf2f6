"""The documentation is self-contained: no pointers to notes or data a user of the repository does not
have, and every relative link leads to a file of the repository."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO

PRIVATE = re.compile(r"MISSION\.md|\.\./shared|\b[Ii]ssue [0-9]|original author|GitHub issue")
# source code and benchmarks: no notes of how the work was organised (they may name the reference data folders)
WORK_NOTES = re.compile(r"\bMISSION|\b[Ii]ssue [0-9]|#[0-9]{2}\b|(original|\bthe) author|seed study|\bsessions?\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _files() -> list:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "specs").glob("*.yaml")),
            *sorted((REPO / "examples").glob("*.py"))]


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_references(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert not PRIVATE.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


def _sources() -> list:
    return [*sorted((REPO / "symode").rglob("*.py")), *sorted((REPO / "bench").glob("*.py")),
            REPO / "bench" / "README.md"]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_work_notes_in_code_and_benchmarks(path):
    """Code, docstrings and benchmarks say what they mean: no task numbers, no "the original author"."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert not WORK_NOTES.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


@pytest.mark.parametrize("path", [p for p in _files() if p.suffix == ".md"], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_exist(path):
    for target in LINK.findall(path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{path.relative_to(REPO)}: broken link {target}"


def test_model_doc_covers_the_model_and_references():
    text = (REPO / "docs" / "model.md").read_text()
    for needle in ("dS/dt", "muX", "gA", "IB", "n x m", "Y -> l Y", "Chen", "Algorithm 1", "Table 1", "Table 2",
                   "mNODE", "Nature Machine Intelligence", "original study"):
        assert needle in text, needle
