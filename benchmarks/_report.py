"""Write a benchmark's section into BENCHMARKS.md between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


LOAD_AT_START = _load()  # every benchmark script imports this module first: the 1-minute load when it started


def machine() -> str:
    """One line describing where the figures were measured, with the 1-minute load average when the script started
    and when this line was made (a script that builds its report at the end saw both)."""
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, load average {LOAD_AT_START:.2f} "
            f"when the script started, {_load():.2f} when it wrote this line")


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section ``name`` of ``path`` (BENCHMARKS.md) with ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    print(body)
    print(f"written to {path}", file=sys.stderr)


def run_kexue(args: list[str], workdir: Path, timeout: float | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m kexue ARGS`` in ``workdir`` with W&B off; the finished process and its wall time in seconds.
    Raises RuntimeError with the tail of stderr if it failed."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kexue", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"kexue {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc, elapsed


def test_metrics(stdout: str) -> dict[str, float]:
    """The ``test/NAME value`` lines ``kexue run|test`` prints last (``test/NAME not computed: why`` is left out)."""
    rows = (line.split() for line in stdout.splitlines() if line.startswith("test/"))
    return {row[0]: float(row[1]) for row in rows if len(row) == 2}
