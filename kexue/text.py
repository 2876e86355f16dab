"""Text utilities shared by the tasks: reading user files, char n-grams, feature hashing.

Feature hashing (the trick fastText uses for n-grams) keeps featurisation stateless: no vocabulary
to build, save, ship with a checkpoint or keep in sync across DDP ranks. ``predict`` on new text
needs nothing but the model's hyperparameters.
"""

from __future__ import annotations

import zlib
from os import PathLike
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor

from kexue.errors import UsageError


def read_labelled_lines(path: str | PathLike, labels: Sequence[str]) -> list[tuple[str, int]]:
    """Read a ``text<TAB>label`` file into ``[(text, label_index)]``.

    Blank lines are skipped. A line without a tab, with an empty text, or with a label not in
    ``labels`` raises :class:`~kexue.errors.UsageError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    index = {label: i for i, label in enumerate(labels)}
    rows: list[tuple[str, int]] = []
    for lineno, line in enumerate(_lines(path), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise UsageError("expected 'text<TAB>label', found no tab", path, lineno)
        if not text.strip():
            raise UsageError("empty text before the tab", path, lineno)
        if label.strip() not in index:
            raise UsageError(f"label {label.strip()!r} is not one of {list(labels)}", path, lineno)
        rows.append((text.strip(), index[label.strip()]))
    if not rows:
        raise UsageError("no examples in file", path)
    return rows


def read_text_lines(path: str | PathLike) -> list[str]:
    """Non-blank lines of a UTF-8 text file (for ``predict``), stripped."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    lines = [line.strip() for line in _lines(path) if line.strip()]
    if not lines:
        raise UsageError("no text lines in file", path)
    return lines


def _lines(path: Path) -> Iterable[str]:
    """Lines of ``path`` decoded one by one, so a bad byte is reported at its own line number."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM
            except UnicodeDecodeError as err:
                raise UsageError(f"not UTF-8 text ({err.reason})", path, lineno) from err


def char_ngrams(text: str, ngrams: Sequence[int] = (1,), max_length: int | None = None) -> list[str]:
    """Character n-grams of ``text`` for each ``n`` in ``ngrams``, in order, unigrams first.

    ``max_length`` truncates the text (in characters) before n-grams are taken.
    """
    if max_length is not None:
        text = text[:max_length]
    return [text[i : i + n] for n in ngrams for i in range(len(text) - n + 1)]


def hash_tokens(tokens: Iterable[str], num_buckets: int) -> list[int]:
    """Stable bucket ids in ``[1, num_buckets)`` for ``tokens`` (0 is left for padding).

    CRC-32 instead of ``hash()``: Python salts string hashes per process, which would change the
    features between training and prediction.
    """
    return [zlib.crc32(t.encode("utf-8")) % (num_buckets - 1) + 1 for t in tokens]


def pad_sequences(seqs: Sequence[Sequence[int]], min_length: int = 1) -> Tensor:
    """Right-pad integer sequences with 0 into a ``(B, T)`` LongTensor, ``T = max(len, min_length)``."""
    width = max([min_length, *map(len, seqs)])
    out = torch.zeros(len(seqs), width, dtype=torch.long)  # (B, T)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out
