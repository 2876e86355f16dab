"""Spectra / 1-D sequence data: chemotools coffee, the UCR sets shipped in sktime, LAMOST-style files.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505). The readers live in
:mod:`kexue.data.spectra`; they raise :class:`kexue.errors.UsageError` naming file and line for bad rows.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from kexue.data.spectra import (  # noqa: F401  (re-exported: the readers' old home)
    FITS_SUFFIXES,
    UCR_DATASETS,
    coffee,
    read_fits_folder,
    read_flux_csv,
    read_label_index,
    read_ts,
    stratified_folds,
    ucr_dataset,
    ucr_root,
)
from kexue.errors import UsageError


class SpectraDataModule(L.LightningDataModule):
    """Batches of ``(x: (B, L) float32 raw spectra, y: (B,) class indices)``; normalisation belongs to the model.

    Sources, by priority: ``flux_path`` (+ ``index_path``) for LAMOST-style data; ``dataset`` = a UCR
    name (official train/test split) or ``"coffee"`` (chemotools, the default). Coffee and user data
    are cut into ``num_folds`` stratified folds: fold ``fold`` is the test set.

    Validation: ``val_fraction`` of the training part, stratified and seeded. With ``val_fraction=0``
    the training set itself is the validation set: no data is held out, and the checkpoint on
    ``val/loss`` is then the lowest-training-loss model (Fawaz et al. 2019's protocol on UCR). ``None``
    means 0 for the UCR sets (100-200 training series are too few to spare) and 0.2 otherwise.

    Args:
        dataset: ``"coffee"`` or a UCR set shipped in sktime (``ACSF1``, ``OSULeaf``, ``GunPoint``, ...).
        flux_path: CSV of ``id,flux...`` rows, or a folder of LAMOST ``.fits`` files.
        index_path: ``id,type`` CSV labelling the spectra of ``flux_path``.
        index_labels: class names of the ``type`` column of ``index_path`` (the competition's four by default).
        num_folds: folds of coffee / user data.
        fold: the test fold.
        val_fraction: see above.
        split_seed: seed of folds and validation carve (not the training seed: the split never moves).
        batch_size: spectra per batch.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        dataset: str = "coffee",
        flux_path: str | None = None,
        index_path: str | None = None,
        index_labels: list[str] = ["star", "galaxy", "qso", "unknown"],  # noqa: B006
        num_folds: int = 5,
        fold: int = 0,
        val_fraction: float | None = None,
        split_seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if num_folds < 2 or not 0 <= fold < num_folds:
            raise ValueError(f"data.fold must be in [0, data.num_folds) with num_folds >= 2, got {fold}, {num_folds}")
        if val_fraction is not None and not 0 <= val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if flux_path and not index_path:
            raise ValueError("data.flux_path needs data.index_path (the id,type label file)")
        self.save_hyperparameters()
        self.splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.labels: list[str] = []

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(X, y, X_test, y_test)``; the test pair is None when folds decide the test set."""
        hp = self.hparams
        if hp.flux_path:
            path = Path(hp.flux_path)
            ids, x = read_fits_folder(path) if path.is_dir() else read_flux_csv(path)
            self.labels = list(hp.index_labels)
            return x, np.array(read_label_index(hp.index_path, ids, path, self.labels)), None, None
        if hp.dataset == "coffee":
            x, names = coffee()
            self.labels = sorted(set(names))
            return x, np.array([self.labels.index(n) for n in names]), None, None
        x, names, x_test, names_test = ucr_dataset(hp.dataset)
        numeric = all(n.lstrip("-").isdigit() for n in names)  # UCR labels are mostly "1", "2", ...: sort as numbers
        self.labels = sorted(set(names), key=lambda n: (int(n), n) if numeric else (0, n))
        unknown = set(names_test) - set(self.labels)
        if unknown:
            raise UsageError(f"test labels {sorted(unknown)} never occur in the training file", hp.dataset)
        to_idx = lambda ns: np.array([self.labels.index(n) for n in ns])  # noqa: E731
        return x, to_idx(names), x_test, to_idx(names_test)

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        hp = self.hparams
        x, y, x_test, y_test = self._load()
        official_split = x_test is not None  # a UCR set
        if x_test is None:
            fold = stratified_folds(y, hp.num_folds, hp.split_seed)
            x_test, y_test, x, y = x[fold == hp.fold], y[fold == hp.fold], x[fold != hp.fold], y[fold != hp.fold]
        val_fraction = hp.val_fraction if hp.val_fraction is not None else (0.0 if official_split else 0.2)
        if val_fraction > 0:
            # Every k-th member of each class (k = 1/val_fraction) goes to validation: stratified, seeded.
            is_val = stratified_folds(y, max(2, round(1 / val_fraction)), hp.split_seed + 1) == 0
            train, val = (x[~is_val], y[~is_val]), (x[is_val], y[is_val])
        else:
            train = val = (x, y)
        self.splits = {"train": train, "val": val, "test": (x_test, y_test)}

    def class_counts(self) -> torch.Tensor:
        """``(C,)`` training examples per class (for class weighting)."""
        return torch.bincount(torch.as_tensor(self.splits["train"][1]), minlength=len(self.labels))

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        x, y = self.splits[name]
        data = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))
        return DataLoader(
            data,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=shuffle and len(x) > self.hparams.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
