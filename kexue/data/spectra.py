"""Readers for spectra and 1-D series: chemotools coffee, the UCR sets shipped in sktime (``.ts``), LAMOST-style
flux CSV and FITS folders with an ``id,type`` label index, and stratified folds.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505). Readers raise
:class:`kexue.errors.UsageError` naming file and line for ragged rows, NaN fluxes and unknown labels.
"""

from __future__ import annotations

import csv
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from kexue.data.readers import utf8_lines
from kexue.errors import UsageError, one_line

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
    for n, raw in enumerate(utf8_lines(path), 1):
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
    for n, fields in enumerate(csv.reader(utf8_lines(path)), 1):
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
        try:
            with fits.open(p) as hdul:
                if hdul[0].data is None or not hdul[0].data.size:
                    raise UsageError("its primary HDU holds no flux values", p)
                data = np.asarray(hdul[0].data, dtype=np.float32)
            flux = data.reshape(-1, data.shape[-1])[0]  # (L,): LAMOST rows are flux, inverse variance, ...
        except UsageError:
            raise
        except Exception as err:  # noqa: BLE001 (astropy's and numpy's errors alike: this file is not a spectrum)
            raise UsageError(f"cannot read a spectrum from it ({one_line(err, 200)})", p) from err
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
    for n, fields in enumerate(csv.reader(utf8_lines(path)), 1):
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
