"""What ``kexue predict`` writes to stdout: its predictions, one line per input line, and nothing else."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO


@contextmanager
def predictions_only() -> Iterator[TextIO]:
    """``kexue predict``'s stdout is its predictions, one line per input line, whatever a library prints (e.g.
    the ``tokenizers`` trainers' progress, which writes blank lines to file descriptor 1): inside, ``sys.stdout``
    is ``sys.stderr`` and file descriptor 1 is a copy of 2; the stream yielded writes to the command's stdout."""
    out = sys.stdout
    out.flush()
    try:
        on_fd1 = out.fileno() == 1
    except (AttributeError, OSError, ValueError):  # pytest's capsys, a StringIO: not a file descriptor
        on_fd1 = False
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 at all (a daemon): only the Python level to redirect
        saved = None
    stream = os.fdopen(os.dup(saved), "w", encoding=out.encoding or "utf-8") if on_fd1 and saved is not None else out
    if saved is not None:
        try:
            os.dup2(2, 1)
        except OSError:  # no file descriptor 2 to send it to: file descriptor 1 stays as it is
            os.close(saved)
            saved = None
    sys.stdout = sys.stderr
    try:
        yield stream
    finally:
        sys.stdout = out
        stream.flush()
        if stream is not out:
            stream.close()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


__all__ = ["predictions_only"]
