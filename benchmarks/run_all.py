"""Rerun every benchmark command BENCHMARKS.md names, in the order it names them (``make bench``).

The commands are read from BENCHMARKS.md itself, so the document and this runner cannot disagree: each section
says which command printed it, and this reruns exactly that. ``--quick`` runs only the scripts that take a few
minutes on 2 cores (startup, CRF, optimizer state, WMD, word counting, task sizes, the bad-input catalogue);
``--only NAME`` runs the commands of one script. Usage: python benchmarks/run_all.py [--quick] [--only NAME]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = ("startup", "crf", "optim", "wmd", "word_count", "task_sizes", "bad_inputs")


def commands() -> list[list[str]]:
    """Every distinct ``python benchmarks/X.py ...`` command in BENCHMARKS.md, in order of first mention."""
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    found = dict.fromkeys(m.group(1).strip() for m in re.finditer(r"`(python benchmarks/[\w.]+\.py[^`]*)`", text))
    found.setdefault("python benchmarks/task_sizes.py")
    return [shlex.split(c) for c in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--only", help="only the commands of benchmarks/ONLY.py")
    args = parser.parse_args()
    failed = []
    for command in commands():
        name = Path(command[1]).stem
        if (args.quick and name not in QUICK) or (args.only and name != args.only):
            continue
        print(f"$ {shlex.join(command)}", flush=True)
        start = time.perf_counter()
        status = subprocess.run([sys.executable, *command[1:]], cwd=ROOT).returncode
        print(f"  exit {status} after {time.perf_counter() - start:.0f} s", flush=True)
        if status:
            failed.append(shlex.join(command))
    for command in failed:
        print(f"FAILED: {command}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
