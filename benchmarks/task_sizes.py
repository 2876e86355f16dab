"""How many files and lines each built-in task takes (plugin, LightningModule, DataModule, YAML), shared blocks
not counted: the Sizes table of docs/architecture.md.

``python benchmarks/task_sizes.py`` prints it, ``--write`` refreshes the table in docs/architecture.md, ``--check``
exits 1 when the table there is stale (tests/test_task_sizes.py fails then too)."""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata as md
import inspect
import re
import sys
from pathlib import Path

from kexue.registry import list_tasks

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def task_files(name: str, task) -> list[Path]:
    (ep,) = [ep for ep in md.entry_points(group="kexue.tasks") if ep.name == name]
    plugin = importlib.import_module(ep.value.partition(":")[0])
    files = {Path(inspect.getfile(plugin))}
    for cls in (task.module_class(), task.datamodule_class()):  # the class and the family bases it builds on
        files |= {Path(inspect.getfile(base)) for base in cls.__mro__
                  if base.__module__.startswith(("kexue.lightning_modules", "kexue.datamodules"))}
    if task.config_path():
        files.add(task.config_path())
    return sorted(files, key=lambda f: (f.suffix, f.parent.name, f.name))  # .py first, then the YAML; stable


def table() -> str:
    """The Sizes section of docs/architecture.md (the text between its ``sizes`` markers), from the code as it is."""
    rows = []
    for entry in list_tasks():
        if entry.status != "ok" or not entry.dist.startswith("kexue "):
            continue
        files = task_files(entry.name, entry.task)
        lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
        rows.append((lines, entry.name, len(files), [f"{f.parent.name}/{f.name}" for f in files]))
    rows.sort()
    (small, *_), (large, *_) = rows[0], rows[-1]
    body = [f"Written by `python benchmarks/task_sizes.py --write` (tests/test_task_sizes.py fails when it is stale): the files a task's own code takes (its plugin module, "
            "the files of its LightningModule and DataModule classes and of the family base classes they extend, its "
            "YAML; a file shared by two tasks counts for both; blocks are not counted). "
            f"Smallest: `{rows[0][1]}`, {rows[0][2]} files, {small} lines; largest: `{rows[-1][1]}`, "
            f"{rows[-1][2]} files, {large} lines.", "", "| task | files | lines |", "|---|---:|---:|"]
    body += [f"| `{name}` | {count} ({', '.join(names)}) | {lines} |" for lines, name, count, names in rows]
    return "\n".join(body)


def written(path: Path | None = None) -> str:
    """The text between the ``sizes`` markers of ``path`` (docs/architecture.md) now ("" if it has none)."""
    text = (path or ARCHITECTURE).read_text(encoding="utf-8")
    found = re.search(r"<!-- sizes:start -->\n(.*?)\n?<!-- sizes:end -->", text, re.S)
    return found.group(1).rstrip() if found else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="refresh the table in docs/architecture.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if the table in docs/architecture.md is stale")
    args = parser.parse_args(argv)
    body = table()
    if args.write:
        from _report import write_section  # imports torch: only to write

        write_section("sizes", body, ARCHITECTURE)
    elif args.check:
        diff = list(difflib.unified_diff(written().splitlines(), body.splitlines(), "docs/architecture.md", "now",
                                         lineterm=""))
        if diff:
            print("\n".join(diff) + "\nstale: run `python benchmarks/task_sizes.py --write`", file=sys.stderr)
            return 1
    else:
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
