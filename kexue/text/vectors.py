"""Word vectors: word2vec text format export/load, nearest neighbours, word-similarity and analogy scores.

The evaluation follows the standard protocol (the one of gensim's ``evaluate_word_pairs`` and
``evaluate_word_analogies``): similarity = Spearman correlation between cosine similarities and human
scores over the pairs whose words are both in the vocabulary; analogy ``a : b :: c : ?`` = the nearest word
to ``b - a + c`` by cosine (3CosAdd), excluding ``a``, ``b``, ``c``, among the ``restrict`` most frequent
words, over the questions whose four words are all there. Words are lower-cased for lookup.

The accumulating torchmetrics form of the similarity score is :class:`kexue.metrics.SpearmanCorrelation`
(fed by :func:`pair_similarities`).
Posts: SVD分解(三) (https://kexue.fm/archives/4208), 更别致的词向量模型 (https://kexue.fm/archives/4677).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse
import torch
from torch import Tensor
from torchmetrics.functional.regression import spearman_corrcoef

from kexue.errors import UsageError


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
    if not path.is_file():
        raise UsageError("file not found", path)
    with path.open(encoding="utf-8", errors="strict") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise UsageError("expected a 'count dimension' header", path, 1)
        count, dim = map(int, header)
        words, rows = [], np.zeros((count, dim), dtype=np.float32)
        for lineno, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split(" ")
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
    """``word1<TAB>word2<TAB>score`` lines (``#`` comments skipped), as wordsim353.tsv and simlex999.txt."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("#") or not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise UsageError("expected 'word1<TAB>word2<TAB>score'", path, lineno)
            rows.append((fields[0].lower(), fields[1].lower(), float(fields[2])))
    return rows


def read_analogies(path: str | PathLike) -> list[tuple[str, str, str, str]]:
    """``a b c d`` questions (``a : b :: c : d``) of ``questions-words.txt``; ``:`` section lines skipped."""
    with open(path, encoding="utf-8") as f:
        return [tuple(line.lower().split()) for line in f if line.strip() and not line.startswith(":")]


def pair_similarities(
    vectors: Tensor, words: Sequence[str], pairs: Sequence[tuple[str, str, float]]
) -> tuple[Tensor, Tensor]:
    """Cosine similarities ``(P,)`` and human scores ``(P,)`` of the ``P`` pairs with both words known."""
    index = {w: i for i, w in enumerate(words)}
    found = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    if not found:
        return torch.zeros(0), torch.zeros(0)
    a, b, gold = (torch.tensor(x) for x in zip(*found))
    unit = normalize(vectors.float())
    return (unit[a] * unit[b]).sum(-1), gold.float()


def word_similarity(
    vectors: Tensor, words: Sequence[str], pairs: Sequence[tuple[str, str, float]]
) -> tuple[float, float]:
    """``(Spearman rho, coverage)`` of cosine similarity against human scores; coverage = share of pairs
    with both words in the vocabulary. rho is 0 with fewer than 3 pairs found."""
    pred, gold = pair_similarities(vectors, words, pairs)
    rho = float(spearman_corrcoef(pred, gold)) if len(pred) >= 3 else 0.0
    return rho, len(pred) / max(1, len(pairs))


def analogy_accuracy(
    vectors: Tensor,
    words: Sequence[str],
    questions: Sequence[tuple[str, str, str, str]],
    restrict: int = 30000,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """``(accuracy, coverage)`` of 3CosAdd on ``a : b :: c : d`` questions among the ``restrict`` first
    (most frequent) words; coverage = share of questions answerable (all four words among them)."""
    words = list(words)[:restrict]
    index = {w: i for i, w in enumerate(words)}
    found = [[index[w] for w in q] for q in questions if all(w in index for w in q)]
    if not found:
        return 0.0, 0.0
    q = torch.tensor(found)  # (Q, 4)
    unit = normalize(vectors[: len(words)].float())  # (V, D)
    correct = 0
    for s in range(0, len(q), batch_size):
        a, b, c, d = q[s : s + batch_size].T  # each (B,)
        sims = normalize(unit[b] - unit[a] + unit[c]) @ unit.T  # (B, V)
        rows = torch.arange(len(a))
        for col in (a, b, c):
            sims[rows, col] = -float("inf")
        correct += int((sims.argmax(-1) == d).sum())
    return correct / len(found), len(found) / len(questions)


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
