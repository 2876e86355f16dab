"""Count the bad-input catalogue: every row of tests/test_bad_inputs.py run as a real ``kexue`` process.

A row is handled cleanly when the process exits 2, prints no traceback, and its last stderr line is
``kexue: error: ...`` holding every expected fragment. Usage: python benchmarks/bad_inputs.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import machine, write_section
from kexue.tests.test_bad_inputs import CATALOGUE, make_files


def run_row(argv: list[str], fragments: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        make_files(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "site"), "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", "kexue", *argv], cwd=tmp, env=env, capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    ok = (proc.returncode == 2 and "Traceback" not in proc.stderr and last.startswith("kexue: error: ")
          and all(f in last for f in fragments))
    return ok, last if ok else f"exit {proc.returncode}: {last}"


def main() -> None:
    start = time.perf_counter()
    results = [(category, name, *run_row(argv, fragments))
               for category, rows in CATALOGUE.items() for name, argv, fragments in rows]
    clean = sum(ok for *_, ok, _ in results)
    by_category = "\n".join(
        f"| {category} | {sum(1 for c, *_ in results if c == category)} | "
        f"{sum(ok for c, _, ok, _ in results if c == category)} |" for category in CATALOGUE)
    rows = "\n".join(f"| {category} | {name} | {'yes' if ok else 'NO'} | `{line.replace('|', '/')[:150]}` |"
                     for category, name, ok, line in results)
    write_section("bad_inputs", f"""## Bad input catalogue

`python benchmarks/bad_inputs.py` runs every row of `tests/test_bad_inputs.py` as a real `kexue` process
({time.perf_counter() - start:.0f} s; {machine()}). **Bad inputs tried / handled cleanly: {len(results)} / {clean}**
(clean = exit status 2, no traceback, one `kexue: error:` line naming what and where).

| category | tried | clean |
|---|---:|---:|
{by_category}

| category | input | clean | what the user sees |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()
