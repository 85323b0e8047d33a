"""Docs that name the test proving a promise (README Guarantees, docs/ml_test_score.md) name tests that exist.

A row pointing at a renamed or deleted test would claim a proof that no longer runs.
A reference is `tests/<path>.py` or `tests/<path>.py::test_name` (the README's Guarantees
table leaves out `tests/`); a bare `::test_name` refers to the file named last before it in
the same table row or paragraph.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/ml_test_score.md"]
REFERENCE = re.compile(r"`(?:tests/)?((?:unit|scenarios|integration|dags)/(?:\w+/)*test_\w+\.py)?(?:::(\w+))?`")


@cache
def _tests_in(path: str) -> frozenset[str]:
    tree = ast.parse((REPO / path).read_text())
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def references(text: str) -> list[tuple[str, str | None]]:
    found = []
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("|"):
            current = None  # a new table row or paragraph
        for match in REFERENCE.finditer(line):
            path, name = match.groups()
            if path is None and name is None:
                continue
            current = f"tests/{path}" if path else current
            if current is None:  # a `::name` with no file before it on the row
                found.append(("?", name))
                continue
            found.append((current, name))
    return found


def test_a_bare_name_refers_to_the_file_before_it_on_the_row():
    row = "| x | `tests/unit/test_a.py::test_one`, `::test_two`; `scenarios/test_b.py` |"
    assert references(row) == [
        ("tests/unit/test_a.py", "test_one"), ("tests/unit/test_a.py", "test_two"), ("tests/scenarios/test_b.py", None)
    ]
    assert references("`unit/test_a.py::test_one` and\n`::test_two`") == [
        ("tests/unit/test_a.py", "test_one"), ("tests/unit/test_a.py", "test_two")
    ]
    assert references("| `unit/test_a.py` |\n| `::orphan` |") == [("tests/unit/test_a.py", None), ("?", "orphan")]
    assert references("`continuum card` and `::text`") == [("?", "text")]
    assert references("`dags/continuum_domains.py`") == []  # a DAG file, not a test


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_a_doc_names_exists(doc):
    text = (REPO / doc).read_text()
    named = references(text)
    assert named, f"{doc} names no test"
    missing = []
    for path, name in named:
        if path == "?" or not (REPO / path).is_file():
            missing.append(f"{path}::{name}")
        elif name is not None and name not in _tests_in(path):
            missing.append(f"{path}::{name}")
    assert missing == [], f"{doc} names tests that do not exist: {missing}"
