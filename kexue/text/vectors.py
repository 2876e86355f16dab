"""Word vectors: word2vec text format export/load, nearest neighbours, word-similarity and analogy scores.

The evaluation follows the standard protocol (the one of gensim's ``evaluate_word_pairs`` and
``evaluate_word_analogies``): similarity = Spearman correlation between cosine similarities and human
scores over the pairs whose words are both in the vocabulary; analogy ``a : b :: c : ?`` = the nearest word
to ``b - a + c`` by cosine (3CosAdd), excluding ``a``, ``b``, ``c``, among the ``restrict`` most frequent
words, over the questions whose four words are all there. Words are lower-cased for lookup.

The scores' math and their accumulating torchmetrics forms (:class:`kexue.metrics.WordSimilarity`,
:class:`kexue.metrics.AnalogyAccuracy`, fed word ids) are in :mod:`kexue.metrics.word_vectors`; the functions here
take words and look them up.
Posts: SVD分解(三) (https://kexue.fm/archives/4208), 更别致的词向量模型 (https://kexue.fm/archives/4677).
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from kexue.errors import UsageError
from kexue.files import utf8_lines
from kexue.metrics.word_vectors import (
    analogy_predictions,
    analogy_score,
    pair_cosines,
    word_similarity_score,
)


def save_word2vec_format(path: str | PathLike, words: Sequence[str], vectors: Tensor | np.ndarray) -> Path:
    """Write ``vectors`` ``(V, D)`` for ``words`` in word2vec text format (``V D`` header, then
    ``word x1 ... xD`` a line), the format ``gensim.models.KeyedVectors.load_word2vec_format`` reads."""
    vectors = np.asarray(vectors.detach().cpu() if isinstance(vectors, Tensor) else vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise ValueError(f"expected {len(words)} vectors as a (V, D) array, got shape {vectors.shape}")
    bad = next((w for w in words if not w or any(c.isspace() for c in w)), None)
    if bad is not None:
        raise ValueError(f"word {bad!r} is empty or holds whitespace: not representable in word2vec text format")
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
    return path


def load_word2vec_format(path: str | PathLike) -> tuple[list[str], np.ndarray]:
    """Read a word2vec text file into ``(words, vectors (V, D) float32)``; a malformed line raises
    :class:`~kexue.errors.UsageError` naming the file and line."""
    path = Path(path)
    lines = utf8_lines(path)
    header = next(iter(lines), "").split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise UsageError("expected a 'count dimension' header", path, 1)
    count, dim = map(int, header)
    words, rows = [], np.zeros((count, dim), dtype=np.float32)
    for lineno, line in enumerate(lines, start=2):
        fields = line.rstrip("\r\n").split(" ")
        if len(fields) != dim + 1 or len(words) >= count:
            raise UsageError(f"expected a word and {dim} numbers", path, lineno)
        try:
            row = np.array(fields[1:], dtype=np.float32)
        except ValueError as err:
            raise UsageError(f"not a number in the vector of {fields[0]!r} ({err})", path, lineno) from err
        if not np.isfinite(row).all():
            raise UsageError(f"the vector of {fields[0]!r} is not finite", path, lineno)
        rows[len(words)] = row
        words.append(fields[0])
    if len(words) != count:
        raise UsageError(f"header says {count} words, found {len(words)}", path)
    return words, rows


def svd_word_vectors(
    matrix: scipy.sparse.spmatrix, dim: int, eig_power: float = 0.5, niter: int = 4, seed: int = 0
) -> np.ndarray:
    """Word vectors ``U_k S_k^eig_power`` ``(V, dim)`` of a word-context matrix ``(V, C)`` (e.g. PPMI) by a seeded
    randomised truncated SVD (SVD分解(三): 连Word2Vec都只不过是个SVD?, https://kexue.fm/archives/4208).

    The range of ``matrix`` is found from ``dim + 10`` Gaussian probes refined by ``niter`` power iterations
    (re-orthogonalised each half step, so small singular values do not drown in rounding), then the exact SVD
    of the small projected matrix gives the leading ``k = min(dim, V, C)`` triplets. ``eig_power`` 0.5 is the
    symmetric split of the singular values between words and contexts, 1 gives ``U S``. Same ``seed``, same
    vectors; each column's sign is fixed so its largest-magnitude entry is positive.
    """
    if dim < 1 or niter < 0:
        raise ValueError(f"dim must be >= 1 and niter >= 0, got {dim}, {niter}")
    a = scipy.sparse.csr_matrix(matrix, dtype=np.float64)  # (V, C)
    k = min(dim, *a.shape)
    probes = min(k + 10, *a.shape)
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(a @ rng.standard_normal((a.shape[1], probes)))[0]  # (V, p): approximate range of the matrix
    for _ in range(niter):
        q = np.linalg.qr(a @ np.linalg.qr(a.T @ q)[0])[0]  # (V, p)
    u_small, s, _ = np.linalg.svd(np.asarray((a.T @ q).T), full_matrices=False)  # (p, p), (p,)
    u = q @ u_small[:, :k]  # (V, k)
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])  # (k,)
    u *= np.where(signs == 0, 1.0, signs)
    return (u * s[:k] ** eig_power).astype(np.float32)  # (V, k)


def normalize(vectors: Tensor) -> Tensor:
    """Rows of ``vectors`` ``(V, D)`` scaled to unit length (zero rows stay zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def nearest_neighbours(
    vectors: Tensor, words: Sequence[str], query: str | Tensor, k: int = 10, exclude: Sequence[str] = ()
) -> list[tuple[str, float]]:
    """The ``k`` words whose vectors are nearest (cosine) to ``query`` (a word or a ``(D,)`` vector),
    the query word and ``exclude`` left out. ``vectors`` is ``(V, D)``, ``words`` its ``V`` words."""
    index = {w: i for i, w in enumerate(words)}
    skip = [index[w] for w in exclude if w in index]
    if isinstance(query, str):
        if query not in index:
            raise KeyError(f"{query!r} is not in the vocabulary")
        skip.append(index[query])
        query = vectors[index[query]]
    sims = normalize(vectors.float()) @ normalize(query.float()[None])[0]  # (V,)
    sims[skip] = -float("inf")
    top = sims.topk(min(k, len(words) - len(skip)))
    return [(words[i], float(s)) for s, i in zip(top.values, top.indices)]


def read_word_pairs(path: str | PathLike) -> list[tuple[str, str, float]]:
    """``word1<TAB>word2<TAB>score`` lines (``#`` comments skipped), as wordsim353.tsv and simlex999.txt; a line
    without its three fields or with a score that is not a finite number, or a file without pairs, is a
    :class:`~kexue.errors.UsageError` naming the file (and line)."""
    rows = []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            raise UsageError("expected 'word1<TAB>word2<TAB>score'", path, lineno)
        try:
            score = float(fields[2])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise UsageError(f"score {fields[2].strip()!r} is not a finite number", path, lineno)
        rows.append((fields[0].lower(), fields[1].lower(), score))
    if not rows:
        raise UsageError("no word pairs in file", path)
    return rows


def read_analogies(path: str | PathLike) -> list[tuple[str, str, str, str]]:
    """``a b c d`` questions (``a : b :: c : d``) of ``questions-words.txt``; ``:`` section lines skipped. A line of
    another number of words, or a file without questions, is a :class:`~kexue.errors.UsageError`."""
    rows = []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        if not line.strip() or line.startswith(":"):
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise UsageError(f"expected four words 'a b c d' (a : b :: c : d), found {len(words)}", path, lineno)
        rows.append(tuple(words))
    if not rows:
        raise UsageError("no analogy questions in file", path)
    return rows


def _word_ids(words: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> Tensor:
    """``rows`` of words as an id tensor ``(N, width)``, ``-1`` for a word not in ``words``."""
    index = {w: i for i, w in enumerate(words)}
    return torch.tensor([[index.get(w, -1) for w in row[:width]] for row in rows], dtype=torch.long).view(-1, width)


def pair_similarities(
    vectors: Tensor, words: Sequence[str], pairs: Sequence[tuple[str, str, float]]
) -> tuple[Tensor, Tensor]:
    """Cosine similarities ``(P,)`` and human scores ``(P,)`` of the ``P`` pairs with both words known."""
    cosines, known = pair_cosines(vectors, _word_ids(words, pairs, 2))  # (N,), (N,)
    return cosines[known], torch.tensor([s for _, _, s in pairs], dtype=torch.float32).view(-1)[known]


def word_similarity(
    vectors: Tensor, words: Sequence[str], pairs: Sequence[tuple[str, str, float]]
) -> tuple[float, float]:
    """``(Spearman rho, coverage)`` of cosine similarity against human scores; coverage = share of pairs
    with both words in the vocabulary. rho is 0 with fewer than 3 pairs found. The math is
    :func:`kexue.metrics.word_similarity_score`'s (this takes words instead of ids)."""
    cosines, known = pair_cosines(vectors, _word_ids(words, pairs, 2))  # (N,), (N,)
    rho, coverage = word_similarity_score(cosines, torch.tensor([s for _, _, s in pairs]).view(-1), known).tolist()
    return rho, coverage


def analogy_accuracy(
    vectors: Tensor,
    words: Sequence[str],
    questions: Sequence[tuple[str, str, str, str]],
    restrict: int = 30000,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """``(accuracy, coverage)`` of 3CosAdd on ``a : b :: c : d`` questions among the ``restrict`` first
    (most frequent) words; coverage = share of questions answerable (all four words among them). The math is
    :func:`kexue.metrics.analogy_predictions` and :func:`kexue.metrics.analogy_score`'s."""
    ids = _word_ids(words, questions, 4)  # (Q, 4)
    predicted, known = [], []
    for s in range(0, len(ids), batch_size):  # a (B, V) similarity matrix at a time
        p, k = analogy_predictions(vectors, ids[s : s + batch_size], restrict)
        predicted.append(p)
        known.append(k)
    if not predicted:
        return 0.0, 0.0
    accuracy, coverage = analogy_score(torch.cat(predicted), ids[:, 3], torch.cat(known)).tolist()
    return accuracy, coverage


__all__ = [
    "analogy_accuracy",
    "load_word2vec_format",
    "nearest_neighbours",
    "normalize",
    "pair_similarities",
    "read_analogies",
    "read_word_pairs",
    "save_word2vec_format",
    "svd_word_vectors",
    "word_similarity",
]
