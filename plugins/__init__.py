"""Task specs of the built-in tasks, registered in pyproject.toml under the ``kexue.tasks`` group.

Each module here must stay importable without torch: ``kexue tasks`` imports them all to list them.
"""
