"""Data helpers shared by the DataModules: the fixed split and the :class:`SplitDataModule` base."""

from __future__ import annotations

import os
from typing import Iterator, Sequence, Sized, TypeVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from kexue.data.readers import read_text_lines
from kexue.errors import UsageError

T = TypeVar("T")


def fixed_split(
    rows: Sequence[T], fractions: tuple[float, float, float], seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Split ``rows`` into train/val/test by a seeded permutation: same input, same split, always.

    ``fractions`` are the train/val/test shares (non-negative, summing to 1); the test split takes the
    remainder after rounding down the first two.
    """
    SplitDataModule.check_split(fractions)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train, n_val = int(fractions[0] * len(rows)), int(fractions[1] * len(rows))
    pick = lambda idx: [rows[i] for i in idx]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train : n_train + n_val]), pick(order[n_train + n_val :])


def check_at_least(**limits: tuple[int, int]) -> None:
    """ValueError (a one-line CLI error) naming ``data.<name>`` for each ``name=(value, least)`` below its least:
    the DataModules' check of their counts and sizes (batch size, buckets, workers...)."""
    for name, (value, least) in limits.items():
        if value < least:
            raise ValueError(f"data.{name} must be >= {least}, got {value}")


class EpochSeededSampler(RandomSampler):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``, not on the global RNG.

    It draws the same permutation as ``torch.utils.data.DistributedSampler`` (``randperm`` from a generator
    seeded with ``seed + epoch``), so one process with batch ``k*b`` sees exactly the global batches that
    ``k`` DDP processes with batch ``b`` see, and a run resumed at an epoch boundary replays the same order.
    Lightning calls :meth:`set_epoch` each epoch; under DDP it swaps in a ``DistributedSampler`` (it does so
    for ``RandomSampler`` subclasses, hence the base class).

    Args:
        data: the dataset (only its length is used).
        seed: base seed; None takes the ``seed_everything`` value (``PL_GLOBAL_SEED``), like Lightning does
            for its DistributedSampler.
    """

    def __init__(self, data: Sized, seed: int | None = None) -> None:
        super().__init__(data)
        self.data, self.epoch = data, 0
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data), generator=generator).tolist())


class SplitDataModule(L.LightningDataModule):
    """An embedded corpus cut by :func:`fixed_split`, any split replaceable by a user file, plus raw
    ``predict`` lines: the plumbing every kexue DataModule shares.

    Subclasses call ``save_hyperparameters()`` with ``train_path``, ``val_path``, ``test_path``,
    ``predict_path``, ``split``, ``split_seed``, ``batch_size``, ``num_workers`` among their arguments,
    and implement :meth:`embedded` (the packaged corpus, fixed order), :meth:`read` (a user file) and
    :meth:`collate`. Examples are ``(text, target)``; ``predict_target`` fills in for raw lines.
    """

    predict_target: object = None

    def __init__(self) -> None:
        super().__init__()
        self.splits: dict[str, list] = {}

    @staticmethod
    def check_split(split: Sequence[float]) -> None:
        """ValueError (a one-line CLI error) unless ``split`` is three fractions summing to 1."""
        if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")

    def embedded(self) -> list:
        raise NotImplementedError

    def read(self, path: str) -> list:
        raise NotImplementedError

    def collate(self, batch: list) -> object:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "predict" and hp.predict_path:  # raw lines only: no need to read the corpus
            if "predict" not in self.splits:
                texts = read_text_lines(hp.predict_path, keep_blank=True)
                self.splits["predict"] = [(t, self.predict_target) for t in texts]
            return
        if not {"train", "val", "test"} <= self.splits.keys():
            paths = {"train": hp.train_path, "val": hp.val_path, "test": hp.test_path}
            embedded = None
            if not all(paths.values()):
                embedded = dict(zip(("train", "val", "test"), fixed_split(self.embedded(), hp.split, hp.split_seed)))
            for name, path in paths.items():
                self.splits[name] = self.read(path) if path else embedded[name]
                if not self.splits[name]:
                    raise UsageError(
                        f"the {name} split is empty (no examples left after reading/filtering)",
                        path or "the embedded corpus",
                    )
        if stage == "predict" and "predict" not in self.splits:
            self.splits["predict"] = [(t, self.predict_target) for t, _ in self.splits["test"]]

    def index_evaluation_rows(self) -> None:
        """Append each val / test / predict row's index to it (``(text, target)`` -> ``(text, target, k)``), once:
        metrics keyed by example index count a row that ``DistributedSampler`` repeats to pad the last batches once
        (:class:`kexue.metrics.ExampleMetric`). Call it at the end of ``setup``."""
        for name in ("val", "test", "predict"):
            rows = self.splits.get(name, [])
            if rows and len(rows[0]) == 2:
                self.splits[name] = [(*row, k) for k, row in enumerate(rows)]

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        hp, data = self.hparams, self.splits[name]
        return DataLoader(
            data,
            batch_size=hp.batch_size,
            sampler=EpochSeededSampler(data) if shuffle else None,
            num_workers=hp.num_workers,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
