"""Opening a user's text file: the one place that turns a missing file or a bad byte into a
:class:`~kexue.errors.UsageError` naming the file and its line. Below both :mod:`kexue.data` (the readers of task
files) and :mod:`kexue.text` (word-vector files), which must not import each other's way round.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Iterable

from kexue.errors import UsageError


def utf8_lines(path: str | PathLike) -> Iterable[str]:
    """Lines of the UTF-8 file ``path`` decoded one by one, so a bad byte is a UsageError at its own line: the one
    way every reader of a user's text file opens it (a missing file is a UsageError too)."""
    if not Path(path).is_file():
        raise UsageError("file not found", path)
    with Path(path).open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM
            except UnicodeDecodeError as err:
                raise UsageError(f"not UTF-8 text ({err.reason})", path, lineno) from err


__all__ = ["utf8_lines"]
