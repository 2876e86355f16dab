"""The CLI's one error boundary: every exception of a ``kexue`` command becomes one line and an exit status.

What the user gave us is turned into objects and data first (options, configs, files, checkpoints); an
exception there, of any type, is the user's input failing, so it is ``kexue: error: <what>: <why>`` and exit 2,
naming the option or file:line where the exception knows it. Once the model has received its first batch, an
exception that is not a :class:`~kexue.errors.UsageError` is a bug in the code: one line, exit 1, and the
traceback saved in the run's ``error.log``; a full disk or an allocation the machine cannot make is exit 2 at any
point (the user's sizes asked for it). ``KEXUE_DEBUG=1`` (or ``--debug``) prints tracebacks as well. An exit-2 line
that names none of the model and data options the user set says which of them it is about (:func:`name_options`).

A plugin needs no code for any of this: the boundary wraps its classes like the built-in ones, and its own
messages go through :class:`kexue.errors.UsageError`.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from kexue.errors import UsageError, one_line

DISK_ERRORS = {errno.EROFS: "read-only", errno.EACCES: "not writable", errno.EPERM: "not writable",
               errno.ENOSPC: "full", errno.EDQUOT: "over quota", errno.ENOTDIR: "a file is in the way",
               errno.EEXIST: "a file is in the way"}


class Phase(Callback):
    """Tracks how far a command got, for the boundary's message: user input is still being turned into objects
    and data until the first batch of any loop (sanity check included) reaches the model."""

    def __init__(self, what: str = "cannot build the model or data", checkpoint: bool = False) -> None:
        self.what, self.running, self.checkpoint = what, False, checkpoint

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # After the DataModule's setup (it runs first); the checkpoint is restored next. ``trainer.ckpt_path`` is not
        # set yet under fit, so the CLI says whether the command was given one (``checkpoint``).
        self.what = "cannot load the checkpoint" if trainer.ckpt_path or self.checkpoint else "cannot prepare the data"

    def _stage_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.what = "cannot prepare the data"  # dataloaders are built next

    on_fit_start = on_validation_start = on_test_start = on_predict_start = on_sanity_check_start = _stage_start

    def _batch_start(self, *args: Any) -> None:
        self.running = True

    on_train_batch_start = on_validation_batch_start = on_test_batch_start = on_predict_batch_start = _batch_start


def disk_error(err: BaseException) -> str | None:
    """The one-line message for a write that failed because the folder is read-only, full or not ours."""
    for cause in _chain(err):
        if isinstance(cause, OSError) and cause.errno in DISK_ERRORS:
            where = cause.filename or "the output folder"
            folder = Path(where).parent if Path(str(where)).suffix else Path(str(where))
            return f"cannot write to {folder}: {DISK_ERRORS[cause.errno]} ({cause.strerror})"
    return None


def memory_error(err: BaseException) -> str | None:
    """The one-line message for an allocation the machine cannot make (host or GPU), at any point of a run: a size
    or count the user set (a width, a batch, a number of samples) asks for it, not a bug in the code."""
    for cause in _chain(err):
        text = str(cause)
        if isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryError" or (
                isinstance(cause, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)):
            asked = re.search(r"allocate (\d+) bytes", text)
            size = f" ({int(asked[1]) / 2**30:.3g} GiB asked)" if asked else ""
            return f"not enough memory{size}: a size, batch or count option is too large for this machine"
    return None


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def debug() -> bool:
    """True when tracebacks are wanted (``KEXUE_DEBUG=1``)."""
    return os.environ.get("KEXUE_DEBUG", "") not in ("", "0", "false")


def given_options(args: list[str]) -> dict[str, str]:
    """``{"model.net.init_args.dim": "0"}``: the model and data options set on the command line (``--key value`` or
    ``--key=value``), the candidates when a line has to say which of the user's options it is about."""
    given, i = {}, 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if flag.startswith(("--model.", "--data.")):
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            given[flag[2:]] = value
        i += 1
    return given


def name_options(line: str, given: dict[str, str]) -> str:
    """``line`` naming the user's options it is about. A check deep in a network or a library names at best its
    own parameter (``dim must be >= 1``), its component (``model.encoder has a weight of shape (0, 96)``) or nothing
    (a failed allocation): the options the user set whose last part is a word of ``line``, or whose component it
    names, go in front of it (``--model.net.init_args.dim=0: ...``); when none is and the line names
    no option of the user's, it ends with the options the user set (``[you set --model.x=1]``), the only difference
    from a default that runs. A line naming one of them already is left as it is."""
    keys = [k for k in given if k in line or k.replace(".init_args.", ".") in line or _quoted_path(given[k], line)]
    if not given or keys:
        return line
    leaves = [k for k in given if re.search(rf"(?<![\w.]){re.escape(k.rsplit('.', 1)[-1])}(?!\w)", line)
              or _component(k) in line]
    if leaves:
        return f"{', '.join(f'--{k}={given[k]}' for k in leaves)}: {line}"
    return f"{line} [you set {' '.join(f'--{k}={v}' for k, v in list(given.items())[:4])}]"


def _component(key: str) -> str:
    """The component an option belongs to (``model.encoder`` for ``model.encoder.init_args.dim``), or a string no
    line holds for a top-level option."""
    parts = key.split(".")
    return ".".join(parts[:2]) + " " if len(parts) > 2 else "\0"


def _quoted_path(value: str, line: str) -> bool:
    """True when ``value`` is a path (not a number) that ``line`` quotes: a line naming the file names the option."""
    try:
        float(value)
        return False
    except ValueError:
        return ("/" in value or "." in value) and len(value) > 3 and value in line  # a file name, not a word


def report(err: BaseException, phase: Phase | None, run_dir: str | None, given: dict[str, str] | None = None) -> int:
    """Print the one line for ``err`` (raised during a command) and return the exit status. ``given`` are the model
    and data options of the command line (:func:`given_options`): an exit-2 line that names none of them is made to
    (:func:`name_options`)."""
    if debug():
        traceback.print_exception(err)
    usage = next((e for e in _chain(err) if isinstance(e, UsageError)), None)
    if usage is not None:
        print(f"kexue: error: {name_options(str(usage), given or {})}", file=sys.stderr)
        return 2
    disk = disk_error(err) or memory_error(err)
    if disk is not None:
        print(f"kexue: error: {name_options(disk, given or {})}", file=sys.stderr)
        return 2
    if phase is None or not phase.running:
        what = phase.what if phase is not None else "cannot build the model or data"
        print(f"kexue: error: {name_options(f'{what}: {one_line(err)}', given or {})}", file=sys.stderr)
        return 2
    saved = save_traceback(err, run_dir)
    where = f"traceback in {saved}" if saved else "run with KEXUE_DEBUG=1 for the traceback"
    print(f"kexue: error: {one_line(err)} (an error in the code, not in your input; {where})", file=sys.stderr)
    return 1


def save_traceback(err: BaseException, run_dir: str | None) -> str | None:
    """Write the full traceback to ``<run_dir>/error.log``; its path, or None if it cannot be written."""
    if not run_dir:
        return None
    path = Path(run_dir) / "error.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(err)), encoding="utf-8")
    except OSError:
        return None
    return str(path)


__all__ = ["Phase", "debug", "disk_error", "given_options", "memory_error", "name_options", "report",
           "save_traceback"]
