"""Write tests/slow.txt, the tests the quick loop (``pytest -m "not slow"``, ``make test-quick``) leaves out, from
measured durations.

    python -m pytest --junitxml=/tmp/durations.xml            # or -n 2; or one file at a time, several XMLs
    python benchmarks/slow_tests.py /tmp/durations.xml [--threshold 2.0 | --budget 300]

A test whose setup + call + teardown took more than ``--threshold`` seconds is slow (``--budget S``: the threshold
that leaves the quick tests S seconds in all, for durations measured on a loaded machine), except the quickest test
of a file whose tests are all slow (the quick loop touches every file) and the tests :data:`ALWAYS_QUICK` names
(every task's ``fast_dev_run``: the quick loop runs every task). Lines of tests/slow.txt for files the XMLs do not
cover are kept, so one file can be re-measured alone. The slowest tests are what a maintainer rereads: each line
carries its duration as a comment. tests/test_test_loop.py fails when a listed test no longer exists;
``python benchmarks/slow_tests.py --prune`` drops such lines without measuring anything (after a merge, say).
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLOW_LIST = REPO / "tests" / "slow.txt"
ALWAYS_QUICK = ("tests/test_every_task.py::test_fast_dev_run[[]*",)
"""fnmatch patterns of node ids never listed, whatever they took: each registered task's default config with
``fast_dev_run`` (tests/test_test_loop.py checks that none of them is listed)."""
HEADER = """\
# The tests `pytest -m "not slow"` (make test-quick) leaves out: tests/conftest.py marks them `slow`.
# Written by `python benchmarks/slow_tests.py DURATIONS.xml --threshold {threshold:g}` (see there): regenerate, do not
# hand-edit, when a test gets slower or quicker; a line naming no test fails tests/test_test_loop.py.
# {note}
"""


def durations(xml_files: list[Path]) -> dict[str, float]:
    """``{node id: seconds}`` from pytest's JUnit XML (``classname`` ``tests.test_x[.Class]``, ``name``)."""
    found: dict[str, float] = {}
    for xml_file in xml_files:
        for case in ET.parse(xml_file).iter("testcase"):
            parts = case.get("classname", "").split(".")
            # The module is the longest prefix that is a file; what follows it is a test class.
            for cut in range(len(parts), 0, -1):
                path = Path(*parts[:cut]).with_suffix(".py")
                if (REPO / path).is_file():
                    nodeid = "::".join([path.as_posix(), *parts[cut:], case.get("name", "")])
                    found[nodeid] = float(case.get("time", 0.0))
                    break
    return found


def budget_threshold(seconds: dict[str, float], budget: float) -> float:
    """The largest duration whose tests, with every quicker one, take at most ``budget`` seconds in all."""
    total, threshold = 0.0, 0.0
    for t in sorted(seconds.values()):
        total += t
        if total > budget:
            break
        threshold = t
    return threshold


def slow_tests(seconds: dict[str, float], threshold: float) -> dict[str, float]:
    """The tests over ``threshold``, less the quickest of each file that would otherwise have none left."""
    slow = {nodeid: t for nodeid, t in seconds.items()
            if t > threshold and not any(fnmatch.fnmatchcase(nodeid, p) for p in ALWAYS_QUICK)}
    by_file: dict[str, list[str]] = {}
    for nodeid in seconds:
        by_file.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    for nodeids in by_file.values():
        if all(n in slow for n in nodeids):
            del slow[min(nodeids, key=seconds.__getitem__)]
    return slow


def kept_lines(measured_files: set[str], path: Path = SLOW_LIST) -> list[str]:
    """The entries of the current list for files that were not measured this time."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [line for line in lines if line.split("::", 1)[0] not in measured_files]


def prune(path: Path = SLOW_LIST) -> int:
    """Drop the lines of ``path`` naming no collected test (``pytest --collect-only``); the number dropped."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pytest --collect-only failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    collected = {line.strip() for line in proc.stdout.splitlines() if "::" in line}
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not line or line.startswith("#") or line.split(" #", 1)[0].strip() in collected]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return len(lines) - len(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml", nargs="*", type=Path, help="JUnit XML written by pytest --junitxml")
    parser.add_argument("--prune", action="store_true", help="only drop the lines that name no test now")
    parser.add_argument("--threshold", type=float, default=2.0, help="seconds above which a test is slow")
    parser.add_argument("--budget", type=float, help="seconds the quick tests may take in all (sets the threshold)")
    parser.add_argument("--note", default="", help="where and under what load the durations were measured")
    parser.add_argument("--output", type=Path, default=SLOW_LIST)
    args = parser.parse_args(argv)
    if args.prune:
        print(f"{prune(args.output)} lines naming no test dropped from {args.output}")
        return 0
    if not args.xml:
        parser.error("give the JUnit XML files to read, or --prune")
    seconds = durations(args.xml)
    if not seconds:
        print("no test cases in the XML", file=sys.stderr)
        return 1
    if args.budget is not None:
        args.threshold = round(budget_threshold(seconds, args.budget), 2)
    slow = slow_tests(seconds, args.threshold)
    measured = {nodeid.split("::", 1)[0] for nodeid in seconds}
    lines = sorted(kept_lines(measured, args.output) + [f"{n}  # {t:.1f} s" for n, t in slow.items()])
    note = args.note or "durations: see the commit that wrote this file"
    args.output.write_text(HEADER.format(threshold=args.threshold, note=note) + "\n".join(lines) + "\n",
                           encoding="utf-8")
    quick = sum(t for n, t in seconds.items() if n not in slow)
    print(f"{len(slow)} of {len(seconds)} measured tests slow (> {args.threshold:g} s); the quick loop's measured "
          f"tests take {quick:.0f} s, the slow ones {sum(slow.values()):.0f} s (one process); written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
