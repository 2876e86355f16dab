"""Spectra / 1-D sequence data: chemotools coffee, the UCR sets shipped in sktime, LAMOST-style files.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505). The readers live in
:mod:`kexue.data.spectra`; they raise :class:`kexue.errors.UsageError` naming file and line for bad rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from kexue.data.datamodule import BatchedDataModule
from kexue.data.spectra import coffee, read_fits_folder, read_flux_csv, read_label_index, stratified_folds, ucr_dataset
from kexue.errors import UsageError
from kexue.platform.figures import log_figure

Arrays = tuple[np.ndarray, np.ndarray]  # (x (N, L) spectra, y (N,) class indices)


def spectra_figure(x: Tensor, y: Tensor, labels: Sequence[str], per_class: int = 3) -> Any:
    """A matplotlib figure, one panel per class with up to ``per_class`` of its spectra ``x: (N, L)`` (``y: (N,)``
    class indices), kexue.fm/archives/5505's first look at the data."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(labels), 1, figsize=(8, 1.4 * len(labels) + 0.6), sharex=True, squeeze=False)
    for c, (ax, name) in enumerate(zip(axes[:, 0], labels)):
        for row in x[y == c][:per_class]:
            ax.plot(row.cpu().numpy(), linewidth=0.7)
        ax.set_ylabel(name, rotation=0, ha="right")
    axes[-1, 0].set_xlabel("position (wavelength bin)")
    return fig


class SpectraDataModule(BatchedDataModule):
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
        batch_size: spectra per batch (coffee has 38 training spectra: 16 would give 2 optimizer steps an epoch).
        kwargs: ``split_seed`` (the seed of the folds and of the validation carve), ``num_workers``: see
            :class:`~kexue.data.datamodule.BatchedDataModule`.

    ``labels`` and ``class_counts`` read the data on first use; the task links them to the model. On ``fit`` the
    DataModule logs a figure of a few training spectra per class (``data/spectra``). Only the loader settings and the
    four loaders come from :class:`~kexue.data.datamodule.BatchedDataModule` (no split files, no split fractions: folds
    instead); ``predict`` classifies the test split.
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
        batch_size: int = 8,
        **kwargs: Any,
    ) -> None:
        if num_folds < 2 or not 0 <= fold < num_folds:
            raise ValueError(f"data.fold must be in [0, data.num_folds) with num_folds >= 2, got {fold}, {num_folds}")
        if val_fraction is not None and not 0 <= val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if flux_path and not index_path:
            raise ValueError("data.flux_path needs data.index_path (the id,type label file)")
        super().__init__(batch_size=batch_size, **kwargs)
        self.splits: dict[str, Arrays] = {}
        self._read: tuple[list[str], Arrays, Arrays | None] | None = None
        self._figure_logged = False

    def _load(self) -> tuple[list[str], Arrays, Arrays | None]:
        """``(labels, (X, y), (X_test, y_test))``, read once; the test pair is None when folds decide the test set."""
        if self._read is not None:
            return self._read
        hp = self.hparams
        if hp.flux_path:
            path = Path(hp.flux_path)
            ids, x = read_fits_folder(path) if path.is_dir() else read_flux_csv(path)
            labels = list(hp.index_labels)
            self._read = labels, (x, np.array(read_label_index(hp.index_path, ids, path, labels))), None
        elif hp.dataset == "coffee":
            x, names = coffee()
            labels = sorted(set(names))
            self._read = labels, (x, np.array([labels.index(n) for n in names])), None
        else:
            x, names, x_test, names_test = ucr_dataset(hp.dataset)
            numeric = all(n.lstrip("-").isdigit() for n in names)  # UCR labels are mostly "1", "2", ...: as numbers
            labels = sorted(set(names), key=lambda n: (int(n), n) if numeric else (0, n))
            unknown = set(names_test) - set(labels)
            if unknown:
                raise UsageError(f"test labels {sorted(unknown)} never occur in the training file", hp.dataset)
            to_idx = lambda ns: np.array([labels.index(n) for n in ns])  # noqa: E731
            self._read = labels, (x, to_idx(names)), (x_test, to_idx(names_test))
        return self._read

    @property
    def labels(self) -> list[str]:
        """Class names in index order (reads the data once): linked to ``model.labels``."""
        return self._load()[0]

    @property
    def class_counts(self) -> list[int]:
        """Training examples per class, ``C`` counts (splits the data once): linked to ``model.class_counts``."""
        if not self.splits:
            self._split()
        return np.bincount(self.splits["train"][1], minlength=len(self.labels)).tolist()

    def _split(self) -> None:
        hp = self.hparams
        _, (x, y), test = self._load()
        official_split = test is not None  # a UCR set
        if test is None:
            fold = stratified_folds(y, hp.num_folds, hp.split_seed)
            test, x, y = (x[fold == hp.fold], y[fold == hp.fold]), x[fold != hp.fold], y[fold != hp.fold]
        val_fraction = hp.val_fraction if hp.val_fraction is not None else (0.0 if official_split else 0.2)
        if val_fraction > 0:
            # Every k-th member of each class (k = 1/val_fraction) goes to validation: stratified, seeded.
            is_val = stratified_folds(y, max(2, round(1 / val_fraction)), hp.split_seed + 1) == 0
            train, val = (x[~is_val], y[~is_val]), (x[is_val], y[is_val])
        else:
            train = val = (x, y)
        self.splits = {"train": train, "val": val, "test": test}
        source = hp.flux_path or hp.dataset
        for name, (x_split, _) in self.splits.items():
            if not len(x_split):  # more folds than a class has spectra, or a val_fraction that takes them all
                raise UsageError(f"the {name} split is empty (data.num_folds={hp.num_folds}, data.fold={hp.fold}, "
                                 f"data.val_fraction={hp.val_fraction})", source)

    def setup(self, stage: str) -> None:
        if not self.splits:
            self._split()
        if stage == "fit" and not self._figure_logged and self.trainer is not None:
            x, y = (torch.as_tensor(a) for a in self.splits["train"])
            log_figure(self.trainer, "data/spectra", spectra_figure(x, y, self.labels))
            self._figure_logged = True

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        x, y = self.splits["test" if name == "predict" else name]
        data = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))
        return DataLoader(
            data,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=shuffle and self.drop_last_training_batch(len(x), self.hparams.flux_path or self.hparams.dataset),
        )
