"""docs/security.md names a test for every attack: each named test exists (a renamed or
deleted test would leave the table claiming a protection nobody checks)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
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


def _references() -> list[tuple[str, str | None]]:
    found = []
    for line in DOC.read_text().splitlines():
        for cell in line.split("|"):
            current = ""
            for path, name in REFERENCE.findall(cell):
                if not path and not name:
                    continue
                current = path or current
                assert current, f"'::{name}' with no file before it in: {cell.strip()}"
                found.append((current, name or None))
    return found


def test_the_security_doc_names_tests() -> None:
    assert len(_references()) > 60


def test_every_test_the_security_doc_names_exists() -> None:
    missing = []
    for path, name in _references():
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
