"""Test setup: no network, no W&B account, every run writes under a temporary directory."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
