"""Task registry: discovers tasks through the ``kexue.tasks`` entry-point group.

A *task* is what ``kexue run NAME`` runs: a LightningModule, a LightningDataModule and a default YAML
config. Built-in tasks register through the same entry-point group as third-party plugins, so the
registry has no special case for them.

This module imports only the standard library: ``kexue tasks`` lists every task without importing
torch or Lightning (the classes are named as lazy ``"module:Class"`` references).
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata as md
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kexue.errors import one_line

PLUGIN_API_VERSION = 1
"""Version of the contract between kexue and a plugin's :class:`Task`. Bumped on breaking changes."""

ENTRY_POINT_GROUP = "kexue.tasks"


class RegistryError(Exception):
    """A task cannot be found or loaded; the message is one line meant for the user."""


@dataclass(frozen=True)
class Task:
    """What a plugin registers under the ``kexue.tasks`` entry-point group.

    Args:
        name: registry key; must equal the entry-point name.
        summary: one line shown by ``kexue tasks``.
        module: the LightningModule, as a class or a lazy ``"package.module:Class"`` reference.
        datamodule: the LightningDataModule, as a class or a lazy reference.
        config: default YAML config, as ``"package:relative/path.yaml"`` (a resource inside an
            installed package) or a filesystem path.
        post: URL of the kexue.fm post the task reproduces.
        metric: the headline metric the task reports (e.g. ``"test/acc"``).
        links: ``(source, target)`` config keys whose values are copied on parse, e.g.
            ``("data.labels", "model.labels")`` so the model is sized by the data's label set.
        data_links: ``(source, target)`` pairs applied when the classes are instantiated: ``source`` is
            ``"data.<attribute>"`` of the built DataModule (a property may read the data to compute it: a
            vocabulary size, a label count, a number of groups), ``target`` a model argument such as
            ``"model.num_classes"``. This is how sizes known only after the data is read reach the model; a
            model never reads ``trainer.datamodule``. On ``validate``/``test``/``predict`` with a
            checkpoint the model's arguments come from the checkpoint instead, and these links are skipped.
        api_version: the plugin API this task was written against (see ``PLUGIN_API_VERSION``).
    """

    name: str
    summary: str
    module: str | type
    datamodule: str | type
    config: str | None = None
    post: str = ""
    metric: str = ""
    links: tuple[tuple[str, str], ...] = ()
    data_links: tuple[tuple[str, str], ...] = ()
    api_version: int = PLUGIN_API_VERSION

    def module_class(self) -> type:
        """Import and return the LightningModule class."""
        return _resolve(self.module, f"task {self.name!r} module")

    def datamodule_class(self) -> type:
        """Import and return the LightningDataModule class."""
        return _resolve(self.datamodule, f"task {self.name!r} datamodule")

    def config_path(self) -> Path | None:
        """Filesystem path of the default config (resolving ``package:resource`` references)."""
        if self.config is None:
            return None
        if ":" in self.config and not Path(self.config).exists():
            package, resource = self.config.split(":", 1)
            try:
                path = Path(str(importlib.resources.files(package).joinpath(resource)))
            except ModuleNotFoundError as err:
                raise RegistryError(f"task {self.name!r}: config package {package!r} not found") from err
        else:
            path = Path(self.config)
        if not path.is_file():
            raise RegistryError(f"task {self.name!r}: default config {self.config!r} not found")
        return path


@dataclass
class TaskEntry:
    """One row of the registry: a task, where it comes from, and whether it can be used.

    ``status`` is ``"ok"``, ``"broken"`` (its plugin failed to import), ``"duplicate"`` (two
    distributions register the name) or ``"incompatible"`` (wrong plugin API version); ``error`` holds
    the one-line reason for anything but ``"ok"``.
    """

    name: str
    dist: str
    task: Task | None = None
    status: str = "ok"
    error: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return self.task.summary if self.task else ""

    def load(self) -> Task:
        """The :class:`Task`, or :class:`RegistryError` with the reason it cannot be used."""
        if self.status != "ok" or self.task is None:
            raise RegistryError(f"task {self.name!r} is {self.status}: {self.error}")
        return self.task


def import_object(ref: str) -> Any:
    """The object named by ``"package.module:attr.path"`` or ``"package.module.Attr"``.

    Raises ``ImportError`` or ``AttributeError`` (callers turn them into their own one-line errors).
    """
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
    else:
        module_name, _, attr = ref.rpartition(".")
        if not module_name:
            raise ImportError(f"{ref!r} is not a dotted path (e.g. torch.optim.AdamW)")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _resolve(ref: str | type, what: str) -> type:
    if not isinstance(ref, str):
        return ref
    try:
        return import_object(ref)
    except (ImportError, AttributeError) as err:
        raise RegistryError(f"{what} {ref!r} cannot be imported: {one_line(err, limit=200)}") from err


def _dist_label(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _load_entry(ep: md.EntryPoint) -> TaskEntry:
    entry = TaskEntry(name=ep.name, dist=_dist_label(ep))
    try:
        task = ep.load()
    except (Exception, SystemExit) as err:  # a plugin may fail in any way (even sys.exit); never the others
        entry.status, entry.error = "broken", one_line(err, limit=200)
        return entry
    if callable(task) and not isinstance(task, Task):
        try:
            task = task()
        except (Exception, SystemExit) as err:
            entry.status, entry.error = "broken", one_line(err, limit=200)
            return entry
    if not isinstance(task, Task):
        entry.status = "broken"
        entry.error = f"entry point {ep.value!r} gives {type(task).__name__}, expected kexue.registry.Task"
    elif task.api_version != PLUGIN_API_VERSION:
        entry.status = "incompatible"
        entry.error = (
            f"written for kexue plugin API {task.api_version}, this kexue provides API "
            f"{PLUGIN_API_VERSION}; upgrade whichever of kexue or {entry.dist} is older"
        )
    elif task.name != ep.name:
        entry.status = "broken"
        entry.error = f"entry point {ep.name!r} names a Task called {task.name!r}"
    entry.task = task if isinstance(task, Task) else None
    return entry


def discover(entry_points: Iterable[md.EntryPoint] | None = None) -> dict[str, TaskEntry]:
    """Load every ``kexue.tasks`` entry point into a ``{name: TaskEntry}`` mapping.

    Failures are recorded on the entry instead of raised, so one bad plugin never hides the others.
    """
    if entry_points is None:
        entry_points = md.entry_points(group=ENTRY_POINT_GROUP)
    by_name: dict[str, list[md.EntryPoint]] = {}
    for ep in entry_points:
        by_name.setdefault(ep.name, []).append(ep)
    registry: dict[str, TaskEntry] = {}
    for name, eps in sorted(by_name.items()):
        dists = sorted({_dist_label(ep) for ep in eps})
        if len(dists) > 1:
            registry[name] = TaskEntry(
                name=name,
                dist=", ".join(dists),
                status="duplicate",
                error=f"registered by more than one distribution: {' and '.join(dists)}; uninstall one",
                sources=dists,
            )
        else:
            registry[name] = _load_entry(eps[0])
    return registry


def list_tasks(pattern: str = "*") -> list[TaskEntry]:
    """Every registered task whose name matches the fnmatch ``pattern``, broken ones included."""
    return [e for name, e in discover().items() if fnmatch.fnmatchcase(name, pattern)]


def get_task(name: str) -> Task:
    """The usable task called ``name``; :class:`RegistryError` (one line) if unknown or unusable."""
    registry = discover()
    if name not in registry:
        known = ", ".join(n for n, e in registry.items() if e.status == "ok") or "none"
        raise RegistryError(f"unknown task {name!r} (known tasks: {known}; see `kexue tasks`)")
    return registry[name].load()
