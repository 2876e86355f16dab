"""The Sizes table of docs/architecture.md is what benchmarks/task_sizes.py measures now (a stale table fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
pytestmark = pytest.mark.skipif(not (BENCHMARKS / "task_sizes.py").is_file(), reason="a source checkout's test")


@pytest.fixture
def task_sizes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import task_sizes

    return task_sizes


def test_sizes_table_is_current(task_sizes) -> None:
    written, now = task_sizes.written(), task_sizes.table()
    assert written, "docs/architecture.md has no <!-- sizes:start --> ... <!-- sizes:end --> section"
    assert written == now, "stale Sizes table: run `python benchmarks/task_sizes.py --write`"


def test_check_reports_a_stale_table(task_sizes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--check compares the section between the markers, not the file: one changed row is found and named."""
    doc = tmp_path / "architecture.md"
    body = task_sizes.table()
    doc.write_text(f"# A\n\n<!-- sizes:start -->\n{body}\n<!-- sizes:end -->\n\nafter\n", encoding="utf-8")
    monkeypatch.setattr(task_sizes, "ARCHITECTURE", doc)
    assert task_sizes.main(["--check"]) == 0
    first_row = next(line for line in body.splitlines() if line.startswith("| `"))
    doc.write_text(doc.read_text(encoding="utf-8").replace(first_row, first_row[:-2] + "0 |"), encoding="utf-8")
    assert task_sizes.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"+{first_row}" in err and "--write" in err
