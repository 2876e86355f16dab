"""Spectra / 1-D sequence data: chemotools coffee, the UCR sets shipped in sktime, LAMOST-style files.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505). Readers raise
:class:`kexue.errors.UsageError` naming file and line for ragged rows, NaN fluxes and unknown labels.
"""

from __future__ import annotations

import csv
import importlib.util
from functools import lru_cache
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from kexue.errors import UsageError

UCR_DATASETS = ("ACSF1", "ArrowHead", "GunPoint", "OSULeaf")  # tested; any sktime/datasets/data/<NAME> works
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz")


def _floats(values: list[str], path: str | Path, line: int) -> np.ndarray:
    try:
        row = np.array([float(v) for v in values], dtype=np.float32)
    except ValueError as err:
        raise UsageError(f"not a number: {err}", path, line) from err
    if not np.isfinite(row).all():
        raise UsageError(f"NaN or infinite flux at column {int(np.argmin(np.isfinite(row))) + 1}", path, line)
    return row


def _stack(rows: list[np.ndarray], lines: list[int], path: str | Path) -> np.ndarray:
    """``(N, L)`` from equal-length rows; a ragged row is an error naming its line."""
    if not rows:
        raise UsageError("no spectra found", path)
    for row, line in zip(rows, lines):
        if len(row) != len(rows[0]):
            raise UsageError(
                f"ragged row: {len(row)} values, expected {len(rows[0])} (as on line {lines[0]})", path, line
            )
    return np.stack(rows)


def read_ts(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Univariate equal-length sktime/UEA ``.ts`` file -> ``(X (N, L) float32, labels)``.

    The format: ``#`` comments, ``@`` header lines up to ``@data``, then one series per line as
    comma-separated values followed by ``:label``. Parsed here so that sktime is never imported.
    """
    rows, labels, lines, in_data = [], [], [], False
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                in_data = in_data or line.lower().startswith("@data")
                continue
            if not in_data or ":" not in line:
                raise UsageError("expected 'v1,v2,...:label' after @data", path, n)
            values, label = line.rsplit(":", 1)
            if ":" in values:
                raise UsageError("multivariate series are not supported", path, n)
            rows.append(_floats(values.split(","), path, n))
            labels.append(label.strip())
            lines.append(n)
    return _stack(rows, lines, path), labels


def ucr_root() -> Path:
    """The ``datasets/data`` folder of the installed sktime (found without importing sktime)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the UCR sets need sktime installed (pip install sktime)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@lru_cache(maxsize=8)
def ucr_dataset(name: str) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Official ``(X_train, y_train, X_test, y_test)`` of the UCR set ``name`` shipped in sktime."""
    folder = ucr_root() / name
    if not (folder / f"{name}_TRAIN.ts").is_file():
        have = sorted(p.name for p in ucr_root().iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())
        raise UsageError(f"unknown dataset {name!r}: expected 'coffee' or one of {', '.join(have)}")
    return (*read_ts(folder / f"{name}_TRAIN.ts"), *read_ts(folder / f"{name}_TEST.ts"))


def coffee() -> tuple[np.ndarray, list[str]]:
    """chemotools' coffee infrared spectra: ``X (60, 1841)`` and the origin of each (3 countries)."""
    import chemotools

    root = Path(chemotools.__file__).parent / "datasets" / "data"
    with open(root / "coffee_spectra.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    x = _stack(
        [_floats(r, root / "coffee_spectra.csv", i + 2) for i, r in enumerate(rows[1:])],
        list(range(2, len(rows) + 1)),
        root / "coffee_spectra.csv",
    )
    with open(root / "coffee_labels.csv", encoding="utf-8") as f:
        labels = [line.strip() for line in f][1:]
    return x, labels[: len(x)]


def read_flux_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """LAMOST competition layout: one spectrum per row, ``id,flux_1,...,flux_L`` -> ``(ids, X (N, L))``.

    A first row whose flux fields are not numbers is taken as a header and skipped.
    """
    ids, rows, lines = [], [], []
    with open(path, encoding="utf-8", newline="") as f:
        for n, fields in enumerate(csv.reader(f), 1):
            if not fields or not any(v.strip() for v in fields):
                continue
            if n == 1 and not _is_number(fields[-1]):
                continue
            if len(fields) < 2:
                raise UsageError("expected 'id,flux_1,...,flux_L'", path, n)
            ids.append(fields[0].strip())
            rows.append(_floats(fields[1:], path, n))
            lines.append(n)
    return ids, _stack(rows, lines, path)


def read_fits_folder(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """Every ``*.fits`` file of ``folder`` (id = file stem): flux = first row of the primary HDU (LAMOST)."""
    try:
        from astropy.io import fits
    except ImportError as err:
        raise UsageError("FITS spectra need astropy: pip install 'kexue[fits]'", folder) from err
    paths = sorted(p for p in Path(folder).iterdir() if p.name.lower().endswith(FITS_SUFFIXES))
    ids, rows = [], []
    for p in paths:
        with fits.open(p) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
        flux = data.reshape(-1, data.shape[-1])[0]  # (L,): LAMOST rows are flux, inverse variance, ...
        if not np.isfinite(flux).all():
            raise UsageError("NaN or infinite flux", p)
        if rows and len(flux) != len(rows[0]):
            raise UsageError(f"{len(flux)} flux values, expected {len(rows[0])} (as in {paths[0].name})", p)
        ids.append(p.name.split(".")[0])
        rows.append(flux)
    if not rows:
        raise UsageError("no .fits files found", folder)
    return ids, np.stack(rows)


def read_label_index(path: str | Path, ids: list[str], flux_path: str | Path, labels: list[str]) -> list[int]:
    """Class index of each of ``ids`` from an ``id,type`` CSV (header first, as the competition's index)."""
    index: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for n, fields in enumerate(csv.reader(f), 1):
            if n == 1 or not fields:
                continue
            if len(fields) < 2:
                raise UsageError("expected 'id,type'", path, n)
            if fields[1].strip() not in labels:
                raise UsageError(f"label {fields[1].strip()!r} not in data.index_labels {labels}", path, n)
            index[fields[0].strip()] = labels.index(fields[1].strip())
    missing = [i for i in ids if i not in index]
    if missing:
        raise UsageError(f"spectrum id {missing[0]!r} has no label in {path}", flux_path)
    return [index[i] for i in ids]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def stratified_folds(y: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """Fold id ``(N,)`` of each example: every class dealt round-robin over the folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = (np.arange(len(members)) + offset) % num_folds
        offset += len(members)  # the next class starts where this one stopped: folds stay balanced in size
    return fold


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
