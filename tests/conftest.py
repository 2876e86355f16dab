"""Test setup: no network, no W&B account, every run writes under a temporary directory; the ``slow`` marker.

The quick loop is ``pytest -m "not slow"`` (``make test-quick``): the tests named in ``tests/slow.txt`` get the
``slow`` marker here, at collection. That list is written by ``python benchmarks/slow_tests.py`` from measured
durations, so it is regenerated rather than edited by hand; a listed test that no longer exists fails
``tests/test_test_loop.py``, as does a test file left with no quick test.

Under pytest-xdist (``make test``: ``-n 2``) each worker computes on one thread: two workers on two cores, not four
threads fighting for them (subprocess runs of ``kexue`` inherit the setting).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLOW_LIST = Path(__file__).with_name("slow.txt")

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def read_slow_list(path: Path = SLOW_LIST) -> dict[str, int]:
    """``{node id: line number}`` of a slow list: one pytest node id a line; ``#`` starts a comment."""
    if not path.is_file():
        return {}
    listed = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        nodeid = line.split(" #", 1)[0].strip()
        if nodeid and not nodeid.startswith("#"):
            listed[nodeid] = number
    return listed


@dataclass
class SlowListReport:
    """What collection found out about ``tests/slow.txt``: ``stale`` (``"tests/slow.txt:LINE: ID"`` for each listed
    id that is no test) and ``all_slow`` (test files whose every test is listed: the quick loop would skip them);
    both only over the test files collected whole, so running one test never calls the others stale."""

    stale: list[str] = field(default_factory=list)
    all_slow: list[str] = field(default_factory=list)


SLOW_REPORT = pytest.StashKey[SlowListReport]()


def check_slow_list(listed: dict[str, int], collected: dict[str, bool], whole_files: set[str],
                    name: str = "tests/slow.txt") -> SlowListReport:
    """The :class:`SlowListReport` of ``listed`` (:func:`read_slow_list`) against ``collected`` (``{node id: marked
    slow}``) and the files collected whole (``tests/test_x.py`` paths relative to the repository)."""
    report = SlowListReport()
    report.stale = [f"{name}:{line}: {nodeid}" for nodeid, line in listed.items()
                    if nodeid not in collected and nodeid.split("::", 1)[0] in whole_files]
    files: dict[str, bool] = {}
    for nodeid, slow in collected.items():
        path = nodeid.split("::", 1)[0]
        files[path] = files.get(path, True) and slow
    report.all_slow = sorted(path for path, slow in files.items() if slow and path in whole_files)
    return report


def _whole_files(config: pytest.Config, items: list[pytest.Item]) -> set[str]:
    """The collected test files that no ``path::name`` argument narrowed (``-k`` / ``-m`` deselect later)."""
    roots = [Path(config.invocation_params.dir, arg).resolve() for arg in config.args if "::" not in arg]
    whole = set()
    for item in items:
        path = Path(item.path).resolve()
        if any(path == root or root in path.parents for root in roots):
            whole.add(item.nodeid.split("::", 1)[0])
    return whole


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not slow"` must see the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = read_slow_list()
    for item in items:
        if item.nodeid in listed:
            item.add_marker(pytest.mark.slow)
    collected = {item.nodeid: item.nodeid in listed for item in items}
    config.stash[SLOW_REPORT] = check_slow_list(listed, collected, _whole_files(config, items))


@pytest.fixture
def slow_list_report(request: pytest.FixtureRequest) -> SlowListReport:
    """What this session's collection found out about ``tests/slow.txt``."""
    return request.config.stash[SLOW_REPORT]


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    # Library log handlers (Lightning, torch) keep the stderr of the test that first imported them, which
    # pytest has closed by now: point them at this test's stderr (in-process CLI runs log through them).
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stderr  # not setStream(): it flushes the closed one


def kexue(*args: str, env: dict[str, str | None] | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run ``python -m kexue ARGS`` in a subprocess; returns the CompletedProcess (text mode).

    ``env`` adds variables to the environment; a value of None removes the variable.
    """
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "kexue", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and the last stderr line is 'kexue: error: ...' holding every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kexue: error: "), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, (fragment, last)
