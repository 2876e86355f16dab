"""Data helpers shared by the DataModules."""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def fixed_split(
    rows: Sequence[T], fractions: tuple[float, float, float], seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Split ``rows`` into train/val/test by a seeded permutation: same input, same split, always.

    ``fractions`` are the train/val/test shares (non-negative, summing to 1); the test split takes the
    remainder after rounding down the first two.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split must be three non-negative fractions summing to 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train, n_val = int(fractions[0] * len(rows)), int(fractions[1] * len(rows))
    pick = lambda idx: [rows[i] for i in idx]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train : n_train + n_val]), pick(order[n_train + n_val :])
