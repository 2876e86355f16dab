"""How many files and lines each built-in task takes (plugin, LightningModule, DataModule, YAML), shared blocks
not counted; written into docs/architecture.md. ``python benchmarks/task_sizes.py``"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
from pathlib import Path

from _report import write_section
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
    return sorted(files, key=lambda f: f.suffix)


def main() -> None:
    rows = []
    for entry in list_tasks():
        if entry.status != "ok" or not entry.dist.startswith("kexue "):
            continue
        files = task_files(entry.name, entry.task)
        lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
        rows.append((lines, entry.name, len(files), [f"{f.parent.name}/{f.name}" for f in files]))
    rows.sort()
    (small, *_), (large, *_) = rows[0], rows[-1]
    body = [f"Measured by `python benchmarks/task_sizes.py`: the files a task's own code takes (its plugin module, "
            "the files of its LightningModule and DataModule classes and of the family base classes they extend, its "
            "YAML; a file shared by two tasks counts for both; blocks are not counted). "
            f"Smallest: `{rows[0][1]}`, {rows[0][2]} files, {small} lines; largest: `{rows[-1][1]}`, "
            f"{rows[-1][2]} files, {large} lines.", "", "| task | files | lines |", "|---|---:|---:|"]
    body += [f"| `{name}` | {count} ({', '.join(names)}) | {lines} |" for lines, name, count, names in rows]
    write_section("sizes", "\n".join(body), ARCHITECTURE)


if __name__ == "__main__":
    main()
