"""kexue: the techniques of Su Jianlin's 科学空间 (kexue.fm) posts as Lightning tasks and reusable blocks.

Importing ``kexue`` is cheap (no torch): blocks live in submodules such as ``kexue.losses``.
"""

__version__ = "0.1.0"
