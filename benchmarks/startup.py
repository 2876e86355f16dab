"""How long `kexue tasks` takes to start, against `python -c "import torch"` (the issue's bar: <= 1.2x).

Usage: python benchmarks/startup.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _report import machine, write_section


def wall(cmd: list[str], repeats: int) -> list[float]:
    times = []
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache once
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    kexue = wall([sys.executable, "-m", "kexue", "tasks"], args.repeats)
    torch_ = wall([sys.executable, "-c", "import torch"], args.repeats)
    python = wall([sys.executable, "-c", "pass"], args.repeats)
    imported = subprocess.run(
        [sys.executable, "-c", "import sys; from kexue.platform.cli import main; main(['tasks']); "
         "print(sorted(m for m in ('torch', 'lightning', 'wandb', 'ot') if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    med = statistics.median
    rows = [("`python -c pass`", python), ('`python -c "import torch"`', torch_), ("`kexue tasks`", kexue)]
    body = "\n".join([
        "## Startup of `kexue tasks`",
        "",
        f"Command: `python benchmarks/startup.py --repeats {args.repeats}` ({machine()}).",
        "",
        "| command | median wall time (s) | min (s) |",
        "|---|---|---|",
        *[f"| {name} | {med(t):.3f} | {min(t):.3f} |" for name, t in rows],
        "",
        f"`kexue tasks` / `import torch` = **{med(kexue) / med(torch_):.2f}x** (bar: ≤ 1.2x). "
        f"Heavy modules imported by `kexue tasks`: {imported} — listing loads each plugin's `Task` "
        "spec through its entry point, never its model or data classes.",
    ])
    write_section("startup", body)


if __name__ == "__main__":
    main()
