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
import inspect
import textwrap
from ast import Attribute, Name, Store, parse, walk
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterable

from kexue.errors import UsageError, one_line

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


def link_problems(task: Task) -> list[str]:
    """One line per end of ``task.links`` / ``task.data_links`` that names no real argument (``[]``: all fine).

    A ``links`` end (either side) and a ``data_links`` target is a config key: ``model.X`` / ``data.X`` an
    ``__init__`` argument of the LightningModule / DataModule, ``X.init_args.Y`` an argument of the class of X's
    ``lazy_instance`` default (jsonargparse keeps it), ``X.Y`` a field of X's dataclass default. A ``data_links``
    source is read from the built DataModule: ``data.X`` must be an attribute, a property or an argument of its class.
    Imports the task's classes (torch): called when a task is loaded to run, never by ``kexue tasks``.
    """
    roots = {"model": task.module_class(), "data": task.datamodule_class()}
    problems = []
    for kind, pairs in (("links", task.links), ("data_links", task.data_links)):
        for source, target in pairs:
            for key, attribute in ((source, kind == "data_links"), (target, False)):
                why = _key_problem(key, roots, attribute)
                if why:
                    problems.append(f"task {task.name!r}: {kind} ({source!r}, {target!r}): {why}")
    return problems


def check_links(task: Task) -> None:
    """:class:`~kexue.errors.UsageError` (one line, exit 2) naming the task, the link and the missing argument
    unless every link of ``task`` names real arguments (see :func:`link_problems`). A broken link is a bug of the
    plugin that registers the task, found before any data is read; the user is asked to report it."""
    problems = link_problems(task)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{problems[0]}{more}; a bug in the plugin that registers {task.name!r}, not in your "
                         "command: please report it to the plugin's authors")


def _key_problem(key: str, roots: dict[str, type], attribute: bool) -> str | None:
    """Why config key ``key`` names nothing (None when it does); ``attribute``: a ``data_links`` source."""
    head, _, rest = key.partition(".")
    if head not in roots or not rest:
        return f"{key!r} must be 'model.<argument>' or 'data.<argument>'"
    cls = roots[head]
    if attribute:
        if "." in rest or not _has_attribute(cls, rest):
            return f"{cls.__name__} has no attribute, property or argument {rest!r}"
        return None
    parts = rest.split(".")
    name = parts.pop(0)
    params = _arguments(cls)
    if name not in params:
        return f"{cls.__name__} has no argument {name!r}"
    param = params[name]
    while parts:
        part = parts.pop(0)
        default = param.default
        if part == "init_args":
            component = _lazy_class(default)
            if component is None:
                return f"{cls.__name__}.{name} has no lazy_instance default to check 'init_args' against"
            if not parts:
                return f"{key!r} names no argument after 'init_args'"
            cls, name = component, parts.pop(0)
            params = _arguments(cls)
            if name not in params:
                return f"{cls.__name__} has no argument {name!r}"
            param = params[name]
        elif is_dataclass(default) and not isinstance(default, type):
            names = {f.name for f in fields(default)}
            if part not in names:
                return f"{type(default).__name__} has no field {part!r}"
            return None if not parts else f"{key!r} goes below a dataclass field"
        else:
            return f"{cls.__name__}.{name} is neither a component (init_args) nor a dataclass: no {part!r} in it"
    return None


def _arguments(cls: type) -> dict[str, inspect.Parameter]:
    """``cls.__init__``'s named parameters, with those of the base classes it passes ``**kwargs`` on to (as
    jsonargparse does)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        try:
            signature = inspect.signature(klass.__init__)
        except (TypeError, ValueError):
            break
        for p in list(signature.parameters.values())[1:]:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params


def _lazy_class(default: Any) -> type | None:
    """The class a jsonargparse ``lazy_instance`` default builds, or None for any other default."""
    init_data = getattr(default, "lazy_get_init_data", None)
    if init_data is None:
        return None
    return import_object(init_data().class_path)


def _has_attribute(cls: type, name: str) -> bool:
    """Whether instances of ``cls`` have ``name``: a class attribute or property, an annotated attribute, an
    ``__init__`` argument, or ``self.<name> = ...`` in a method of ``cls`` or of a base class of the same project."""
    if hasattr(cls, name) or name in _arguments(cls):
        return True
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return True
        if klass.__module__.split(".")[0] in ("builtins", "torch", "lightning"):
            continue
        try:
            tree = parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        if any(isinstance(node, Attribute) and node.attr == name and isinstance(node.value, Name)
               and node.value.id == "self" and isinstance(node.ctx, Store) for node in walk(tree)):
            return True
    return False


def get_task(name: str) -> Task:
    """The usable task called ``name``; :class:`RegistryError` (one line) if unknown or unusable."""
    registry = discover()
    if name not in registry:
        known = ", ".join(n for n, e in registry.items() if e.status == "ok") or "none"
        raise RegistryError(f"unknown task {name!r} (known tasks: {known}; see `kexue tasks`)")
    return registry[name].load()
