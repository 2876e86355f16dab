"""Each task's default run, timed: `kexue run TASK` as a user types it, on its embedded data, start to finish.

The brief's bar is "runs from the CLI on its embedded default in minutes on 2 CPU cores". Each run happens in a
fresh temporary folder (so its `runs/` starts empty; W&B offline, as with no account) and is timed as wall seconds
and as the CPU seconds of the process and its children. The metric lines the run prints (its ``test/...`` report,
and the progress bar's last ``val/...:`` values where the bar prints them) are quoted as they were printed. The section is rewritten after every task, so a long sweep can be stopped midway.

Usage: python benchmarks/default_runs.py [--tasks sentiment,word2vec,...] [--section NAME]
(default: every built-in task, section default-runs; a subset run can keep its own section beside it).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

from _report import machine, write_section

METRIC = re.compile(r"^(test|val)/\S+ -?\d+(\.\d+)?$")


def registered_tasks() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "kexue", "tasks"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return [row[0] for row in rows if "kexue" in row]  # the built-in tasks (a plugin installed here is not ours)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(task: str) -> tuple[int, float, float, list[str]]:
    """``(exit code, wall s, CPU s, metric lines)`` of ``kexue run TASK`` in a fresh folder."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    with tempfile.TemporaryDirectory(prefix=f"kexue-{task}-") as folder:
        cpu, start = children_cpu(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "kexue", "run", task], cwd=folder, env=env,
                              capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    metrics = [line.strip() for line in proc.stdout.splitlines() if METRIC.match(line.strip())]
    return proc.returncode, wall, cpu, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all registered)")
    parser.add_argument("--section", default="default-runs", help="BENCHMARKS.md section to (re)write")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t] or registered_tasks()
    rows = []
    for task in tasks:
        code, wall, cpu, metrics = run(task)
        shown = "; ".join(metrics[:6]) if metrics else "(none printed)"
        status = "ok" if code == 0 else f"**exit {code}**"
        rows.append(f"| `{task}` | {status} | {wall / 60:.1f} | {cpu / 60:.1f} | {shown} |")
        print(rows[-1], flush=True)
        flags = (f" --tasks {args.tasks}" if args.tasks else "") + (
            f" --section {args.section}" if args.section != "default-runs" else "")
        body = "\n".join([
            "## Default runs: `kexue run TASK` on the embedded data"
            + (f" ({', '.join(tasks)})" if args.section != "default-runs" else ""),
            "",
            f"Command: `python benchmarks/default_runs.py{flags}` ({machine()}; each run uses the task's own "
            "thread settings). Wall and CPU in minutes, "
            "CPU over both cores (it can exceed wall); start-up, training, test and export included; W&B offline; "
            "the tokenised-corpus cache (`$KEXUE_CACHE`) warm.",
            "",
            "| task | exit | wall (min) | CPU (min) | metrics printed at the end |",
            "|---|---|---:|---:|---|",
            *rows,
        ])
        write_section(args.section, body)


if __name__ == "__main__":
    main()
