"""The exhaustive option sweep (issue 29, item 1): every registered task x every model/data option x each of its
boundary values (tests/sweep.py), one in-process ``kexue run TASK --trainer.fast_dev_run 1 --OPTION VALUE`` each.

A case keeps the CLI's promise when it ends with exit 0 and test metrics, or exit 2 and one ``kexue: error:`` line
naming the option; ``tests/test_option_sweep.py`` runs one value per option of the same table. Prints the counts
per task and the cases that broke the promise; ``--out FILE`` writes every case as JSON lines.

Usage: python benchmarks/option_sweep.py [--tasks a,b] [--sample] [--timeout 120] [--out sweep.jsonl]
(``--sample``: only the test's cases, one value per option. ``KEXUE_SOURCE=DIR`` runs the kexue of another checkout,
e.g. ``git archive`` of an older commit, with this sweep: the "before" of a fix.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _report import ROOT, machine

if os.environ.get("KEXUE_SOURCE"):  # an editable install's finder maps kexue.* to folders: point it at the other one
    import __editable___kexue_0_1_0_finder as finder  # noqa: E402

    finder.MAPPING.update({k: v.replace(str(ROOT), os.environ["KEXUE_SOURCE"]) for k, v in finder.MAPPING.items()
                           if k != "kexue.tests"})

from kexue.registry import list_tasks  # noqa: E402
from kexue.tests.sweep import cases, run_case, sample, verdict  # noqa: E402

PROMISE_KEPT = ("ok", "refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: every registered task)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds before a case counts as a hang")
    parser.add_argument("--out", default="", help="JSON lines file for every case")
    parser.add_argument("--sample", action="store_true", help="one value per option, as tests/test_option_sweep.py")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    names = [n for n in args.tasks.split(",") if n] or [e.name for e in list_tasks() if e.status == "ok"]
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    totals: dict[str, Counter] = {}
    broken: list[str] = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # runs/ and anything a task writes stays out of the repository
        for name in names:
            counts = totals.setdefault(name, Counter())
            todo = cases(name, Path(tmp) / "scratch")
            for option, label, value in sample(todo, name) if args.sample else todo:
                began = time.time()
                status, stdout, stderr = run_case(name, option, value, f"{tmp}/runs", timeout=args.timeout)
                result = verdict(status, stdout, stderr, option.key, value)
                lines = stderr.strip().splitlines()
                last = lines[-1] if lines else ""
                counts[result] += 1
                if result not in PROMISE_KEPT:
                    broken.append(f"{name} {option.flag}={value!r} ({label}): {result}: {last[:300]}")
                if out:
                    out.write(json.dumps({"task": name, "option": option.key, "label": label, "value": value,
                                          "status": status, "verdict": result, "last": last[:500],
                                          "seconds": round(time.time() - began, 2)}, ensure_ascii=False) + "\n")
                    out.flush()
            print(f"{name}: {dict(counts)}", file=sys.stderr, flush=True)
    kinds = sorted({k for c in totals.values() for k in c})
    print(f"option sweep, {machine()}, {time.time() - start:.0f} s\n")
    print("| task | cases | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for name, counts in totals.items():
        print(f"| {name} | {sum(counts.values())} | " + " | ".join(str(counts[k]) for k in kinds) + " |")
    total = Counter()
    for counts in totals.values():
        total.update(counts)
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[k]) for k in kinds) + " |\n")
    for line in broken:
        print(line)


if __name__ == "__main__":
    main()
