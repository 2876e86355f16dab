"""Errors caused by what the user gave us (a file, a value), reported as one line and exit code 2."""

from __future__ import annotations

from os import PathLike


class UsageError(Exception):
    """Bad user input. The CLI prints ``kexue: error: <message>`` and exits with status 2.

    Args:
        message: what is wrong, in one line.
        path: the file at fault, if any.
        line: 1-based line number in ``path``, if known.
    """

    def __init__(self, message: str, path: str | PathLike | None = None, line: int | None = None) -> None:
        self.path, self.line = path, line
        where = f"{path}:{line}: " if path is not None and line is not None else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


def one_line(err: BaseException, limit: int = 400, with_type: bool = True) -> str:
    """``Type: message`` (or just the message) of ``err`` squeezed onto one line and cut at ``limit`` characters:
    how every kexue error line quotes an exception."""
    text = " ".join(str(err).split())
    if with_type:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit] + " ..."
