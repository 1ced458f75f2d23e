"""docs/security.md names a test for every attack, and docs/reliability.md one for every
fault: each named test exists (a renamed or deleted test would leave the table claiming a
protection nobody checks)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = {"security.md": 60, "reliability.md": 20}  # each doc, and how many references at least
# `tests/x.py::test_name[param]`, `::test_name` (same file as the last one in the cell) or a
# bare `tests/x.py` (a whole file); `*` stands for any part of a name.
REFERENCE = re.compile(r"`((?:tests/[\w/]+\.py)?)(?:::([\w*]+)(?:\[[^\]]*\])?)?`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def _references(doc: str = "security.md") -> list[tuple[str, str | None]]:
    found = []
    for line in (ROOT / "docs" / doc).read_text().splitlines():
        for cell in line.split("|"):
            current = ""
            for path, name in REFERENCE.findall(cell):
                if not path and not name:
                    continue
                current = path or current
                assert current, f"'::{name}' with no file before it in: {cell.strip()}"
                found.append((current, name or None))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_the_doc_names_tests(doc: str) -> None:
    assert len(_references(doc)) > DOCS[doc]


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_the_doc_names_exists(doc: str) -> None:
    missing = []
    for path, name in _references(doc):
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name is None:
            continue
        pattern = re.compile(re.escape(name).replace(r"\*", r"\w*") + r"\Z")
        if not any(pattern.match(test) for test in _tests_in(file)):
            missing.append(f"{path}::{name}")
    assert missing == []
