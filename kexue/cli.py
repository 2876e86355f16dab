"""The ``kexue`` command's entry function, at the import path plugin API 1 promises: ``from kexue.cli import main``
(``main(["run", "TASK", ...])`` returns the exit status). The command itself lives in :mod:`kexue.platform.cli`."""

from kexue.platform.cli import main

__all__ = ["main"]
