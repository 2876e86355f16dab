"""The option sweep (issue 29, item 1): every model and data option of a task as the CLI sees it, boundary values
for each, and the verdict on one run.

:func:`task_options` parses a task's defaults with the task's own :class:`~kexue.platform.lightning_cli.KexueCLI`
parser and flattens them: nested config dataclasses (``model.generation.top_k``) and the ``init_args`` of the
default components (``model.net.init_args.config.dim``, ``data.tokenizer.init_args.min_count``) included, each with
its type hint (the parser's, or the component class's signature / dataclass field for ``init_args``).
:func:`boundary_values` gives the values a user could plausibly get wrong for that type; :func:`run_case` runs one
``kexue`` command in-process and :func:`verdict` says whether it kept the CLI's promise: exit 0, or exit 2 and one
``kexue: error:`` line naming the option — never exit 1, never a traceback.

``tests/test_option_sweep.py`` runs a deterministic sample; ``benchmarks/option_sweep.py`` runs them all.
"""

from __future__ import annotations

import hashlib
import io
import signal
import types
import typing
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

TINY = ["--trainer.fast_dev_run=1", "--logger", "none"]
HUGE_INT, HUGE_FLOAT = 10**12, 1e30
PATH_WORDS = ("path", "file", "dir", "folder", "source", "checkpoint", "schema")


@dataclass(frozen=True)
class Option:
    """One leaf option of a task: its dotted key (``model.net.init_args.config.dim``), type hint and default."""

    key: str
    hint: Any
    default: Any

    @property
    def flag(self) -> str:
        """The command-line flag that sets it."""
        return f"--{self.key}"


def task_options(name: str) -> list[Option]:
    """The model and data options of task ``name``, as its parser resolves its default config (no data is read)."""
    from kexue.platform.lightning_cli import KexueCLI
    from kexue.registry import get_task

    class Parsed(Exception):
        pass

    class OnlyParse(KexueCLI):
        def parse_arguments(self, parser: Any, args: Any) -> None:
            super().parse_arguments(parser, args)
            raise Parsed(parser, self.config)

    try:
        OnlyParse(get_task(name), "fit", [])
    except Parsed as stop:
        parser, cfg = stop.args
    hints = {a.dest: a._typehint for a in parser._actions if hasattr(a, "_typehint")}
    flat = vars(cfg.clone().as_flat())
    options = []
    for key, value in flat.items():
        if not key.startswith(("model.", "data.")) or key.endswith((".class_path", ".dict_kwargs")):
            continue
        hint = hints.get(key, None) if key in hints else _component_hint(key, flat)
        options.append(Option(key, hint, value))
    return options


def _component_hint(key: str, flat: dict[str, Any]) -> Any:
    """The type hint of ``key`` inside a component's ``init_args``: the class's ``__init__`` parameter, then a field
    of each nested dataclass; ``Any`` when unknown."""
    from jsonargparse._util import import_object

    parts = key.split(".")
    for cut in range(len(parts) - 2, 0, -1):
        if parts[cut] == "init_args" and ".".join(parts[:cut]) + ".class_path" in flat:
            cls = import_object(flat[".".join(parts[:cut]) + ".class_path"])
            rest = parts[cut + 1:]
            break
    else:
        return Any
    try:
        hint = typing.get_type_hints(cls.__init__).get(rest[0], Any)
    except Exception:
        return Any
    for part in rest[1:]:
        klass = next((a for a in _alternatives(hint) if is_dataclass(a)), None)
        if klass is None:
            return Any
        hint = typing.get_type_hints(klass).get(part, Any)
        if not any(f.name == part for f in fields(klass)):
            return Any
    return hint


def _alternatives(hint: Any) -> tuple[Any, ...]:
    """The members of a union (``int | None`` -> ``(int, NoneType)``), or ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def kind(option: Option) -> str | None:
    """What boundary values fit ``option``: ``int``, ``float``, ``path``, ``literal``, ``list``, ``str``; None for
    booleans and what the sweep does not vary (a component's class, a free mapping)."""
    alts = [a for a in _alternatives(option.hint) if a is not type(None)]
    leaf = option.key.rsplit(".", 1)[-1]
    origins = {typing.get_origin(a) for a in alts}
    if any(typing.get_origin(a) is Literal for a in alts) or any(isinstance(a, type) and a.__name__ == "Literal"
                                                                    for a in alts):
        return "literal"
    if bool in alts or isinstance(option.default, bool):
        return None
    if origins & {list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence} or isinstance(
            option.default, (list, tuple)):
        return "path" if leaf.endswith("paths") else "list"
    if int in alts or (type(option.default) is int and option.hint is Any):
        return "int"
    if float in alts or (type(option.default) is float and option.hint is Any):
        return "float"
    if str in alts or isinstance(option.default, str) or any(getattr(a, "__name__", "") in ("Path", "PathLike")
                                                             for a in alts):
        return "path" if any(word in leaf for word in PATH_WORDS) else "str"
    return None


def boundary_values(option: Option, scratch: Path) -> list[tuple[str, str]]:
    """``(label, value)`` pairs to try on ``option``: 0, -1, huge and a wrong type for numbers; empty, missing, a
    directory and a binary file for paths; a wrong choice for Literals; empty and wrong type for lists."""
    k = kind(option)
    if k == "int":
        return [("zero", "0"), ("negative", "-1"), ("huge", str(HUGE_INT)), ("wrong type", "x")]
    if k == "float":
        return [("zero", "0"), ("negative", "-1"), ("huge", str(HUGE_FLOAT)), ("wrong type", "x")]
    if k == "path":
        missing, folder, binary = scratch_files(scratch)
        listed = option.key.endswith("paths")
        wrap = (lambda p: f"[{p}]") if listed else (lambda p: p)
        return [("empty", "[]" if listed else ""), ("missing path", wrap(missing)), ("directory", wrap(folder)),
                ("binary file", wrap(binary))]
    if k == "literal":
        return [("wrong choice", "nope"), ("empty", "")]
    if k == "list":
        return [("empty", "[]"), ("wrong type", "x"), ("negative item", "[-1]")]
    if k == "str":
        return [("empty", ""), ("wrong value", "nope")]
    return []


def scratch_files(root: Path) -> tuple[str, str, str]:
    """A path that does not exist, a directory and a binary file under ``root`` (made once)."""
    folder, binary = root / "a_folder", root / "binary.bin"
    folder.mkdir(parents=True, exist_ok=True)
    if not binary.exists():
        binary.write_bytes(bytes(range(256)) * 16 + b"\x00\xff\xfe PK\x03\x04")
    return str(root / "no_such_file.txt"), str(folder), str(binary)


def cases(name: str, scratch: Path) -> list[tuple[Option, str, str]]:
    """Every ``(option, label, value)`` of task ``name``."""
    return [(option, label, value) for option in task_options(name)
            for label, value in boundary_values(option, scratch)]


def sample(all_cases: list[tuple[Option, str, str]], task: str) -> list[tuple[Option, str, str]]:
    """One case per option, the value rotated by a stable hash of (task, option): every option is tried every run,
    each value somewhere, the same ones on every machine."""
    by_option: dict[str, list[tuple[Option, str, str]]] = {}
    for case in all_cases:
        by_option.setdefault(case[0].key, []).append(case)
    picked = []
    for key, options in by_option.items():
        digest = int(hashlib.sha256(f"{task}:{key}".encode()).hexdigest(), 16)
        picked.append(options[digest % len(options)])
    return picked


class Timeout(KeyboardInterrupt):
    """Raised by the alarm in :func:`run_case`: a KeyboardInterrupt, so the CLI ends the run as on Ctrl-C."""


def run_case(task: str, option: Option, value: str, root: str, timeout: int = 0,
             command: str = "run") -> tuple[int, str, str]:
    """``kexue COMMAND TASK --OPTION VALUE`` with fast_dev_run, in this process: (exit status, stdout, stderr).
    ``timeout`` seconds (0: none) end a run that hangs with status 124."""
    from kexue.platform.cli import main

    argv = [command, task, *TINY, "--trainer.default_root_dir", root, f"{option.flag}={value}"]
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_: Any) -> None:
        raise Timeout

    previous = signal.signal(signal.SIGALRM, alarm) if timeout else None
    if timeout:
        signal.alarm(timeout)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            status = main(argv)
    except Timeout:
        status = 124
    except BaseException as escaped:  # noqa: BLE001 - an exception escaping main is the worst verdict
        status, err = 99, io.StringIO(f"{err.getvalue()}\nescaped main: {escaped!r}")
    finally:
        if timeout:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    if status == 130 and timeout:
        status = 124  # the alarm went off inside the run: the CLI took it for Ctrl-C
    return status, out.getvalue(), err.getvalue() if isinstance(err, io.StringIO) else str(err)


def names_option(line: str, key: str, value: str = "") -> bool:
    """True when ``line`` names ``key``: its dotted path, with or without the ``init_args`` jsonargparse lets a
    user leave out, or, for a path, the file (``value``) it points at: the project's ``FILE: why`` lines."""
    return key in line or key.replace(".init_args.", ".") in line or ("/" in value and value.strip("[]") in line)


def verdict(status: int, out: str, err: str, key: str, value: str = "") -> str:
    """``ok`` (exit 0 with test metrics), ``refused`` (exit 2, one line naming the option), ``hinted`` (exit 2, the
    option only in the boundary's ``[you set ...]``: the line says what failed, not which option caused it) or what
    went wrong: ``exit 1``, ``unnamed`` (exit 2 without the option's name), ``traceback``, ``timeout``,
    ``no result``, ``escaped``, ``exit N``."""
    lines = err.strip().splitlines()
    last = lines[-1] if lines else ""
    if "Traceback" in err:
        return "traceback"
    if status == 0:
        return "ok" if any(line.startswith("test/") for line in out.splitlines()) else "no result"
    if status == 2:
        if not last.startswith("kexue: error: "):
            return "unnamed"
        said, _, hint = last.partition(" [you set ")  # the boundary's list of what the user set: a weaker naming
        return ("refused" if names_option(said, key, value) else "hinted" if names_option(hint, key, value)
                else "unnamed")
    return {1: "exit 1", 124: "timeout", 99: "escaped"}.get(status, f"exit {status}")


__all__ = ["HUGE_FLOAT", "HUGE_INT", "Option", "TINY", "boundary_values", "cases", "kind", "names_option",
           "run_case", "sample", "scratch_files", "task_options", "verdict"]
