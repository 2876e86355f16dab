"""Word-vector evaluation: word-similarity Spearman and analogy accuracy, each with the coverage it was computed on.

The protocol is the standard one, gensim's ``KeyedVectors.evaluate_word_pairs`` / ``evaluate_word_analogies``:

- similarity: Spearman correlation between the cosine of the two words' vectors and the human score, over the
  pairs whose two words are in the vocabulary;
- analogy ``a : b :: c : d``: correct when the nearest word (cosine) to ``b - a + c`` of unit vectors (3CosAdd),
  ``a``, ``b`` and ``c`` excluded, among the ``candidates`` most frequent words, is ``d``; over the questions whose
  four words are all among those candidates.

Words arrive as ids, ``-1`` for a word the vocabulary lacks (the DataModule encodes the word lists with its
vocabulary); such a row counts against the coverage, the share of rows that could be scored, which every score is
logged beside so that a figure computed on a handful of pairs shows as such; a score with nothing under it (fewer
than 3 pairs to rank, no question to answer) is NaN, and the CLI prints why instead (:mod:`kexue.metrics.missing`).
Functional forms hold the math; the
:class:`WordSimilarity` and :class:`AnalogyAccuracy` Metrics keep one row per pair / question (with dataset indices
as ``ids``, a row repeated by ``DistributedSampler``'s padding counts once, so the DDP value is the one-process one).
Posts: SVD分解(三) (https://kexue.fm/archives/4208), 更别致的词向量模型 (https://kexue.fm/archives/4677).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kexue.metrics import ExampleMetric, similarity_correlation


def unit_rows(vectors: Tensor) -> Tensor:
    """Rows of ``vectors`` ``(V, D)`` scaled to unit length, in float32 (zero rows stay zero)."""
    vectors = vectors.float()
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (V, D)


def pair_cosines(vectors: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Cosines ``(P,)`` of the word pairs ``pairs`` ``(P, 2)`` (ids into ``vectors`` ``(V, D)``, ``-1`` unknown)
    and which pairs are ``known`` ``(P,)`` bool (both words in the vocabulary; an unknown pair's cosine is 0)."""
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"expected word-id pairs of shape (P, 2), got {tuple(pairs.shape)}")
    known = (pairs >= 0).all(-1) & (pairs < len(vectors)).all(-1)  # (P,)
    unit = unit_rows(vectors)[pairs.clamp(0, len(vectors) - 1)]  # (P, 2, D)
    return (unit[:, 0] * unit[:, 1]).sum(-1) * known, known


def word_similarity_score(cosines: Tensor, scores: Tensor, known: Tensor) -> Tensor:
    """``[Spearman, coverage]`` ``(2,)`` float64 of ``cosines`` ``(P,)`` against human ``scores`` ``(P,)`` over the
    ``known`` ``(P,)`` pairs (https://kexue.fm/archives/4208). Spearman is NaN, not a number, with fewer than 3
    known pairs (too few to rank: :mod:`kexue.metrics.missing`); ties take their average rank, as scipy's
    ``spearmanr``."""
    if not cosines.shape == scores.shape == known.shape or cosines.ndim != 1:
        raise ValueError(f"expected cosines, scores and known of one shape (P,), got {tuple(cosines.shape)}, "
                         f"{tuple(scores.shape)}, {tuple(known.shape)}")
    known = known.bool()
    coverage = known.double().mean() if len(known) else torch.zeros((), dtype=torch.float64)
    rho = similarity_correlation(cosines[known], scores[known])[1] if int(known.sum()) >= 3 else coverage * math.nan
    return torch.stack([rho.double().cpu(), coverage.cpu()])


def analogy_predictions(vectors: Tensor, questions: Tensor, candidates: int | None = None) -> tuple[Tensor, Tensor]:
    """3CosAdd answers ``(Q,)`` to ``a : b :: c : ?`` questions ``(Q, 4)`` (ids ``a, b, c, d``, ``-1`` unknown) and
    which questions are ``known`` ``(Q,)`` bool: all four words among the ``candidates`` first (most frequent) rows
    of ``vectors`` ``(V, D)`` (``None``: all). The answer is the candidate nearest by cosine to the normalised
    ``b - a + c`` of unit vectors, ``a``, ``b``, ``c`` excluded; an unknown question's answer is ``-1``."""
    if questions.ndim != 2 or questions.shape[1] != 4:
        raise ValueError(f"expected analogy questions of shape (Q, 4), got {tuple(questions.shape)}")
    n = len(vectors) if candidates is None else min(candidates, len(vectors))
    known = ((questions >= 0) & (questions < n)).all(-1)  # (Q,)
    unit = unit_rows(vectors[:n])  # (n, D)
    a, b, c, _ = questions.clamp(0, n - 1).T  # (Q,) each
    target = unit[b] - unit[a] + unit[c]  # (Q, D)
    sims = unit_rows(target) @ unit.T  # (Q, n)
    rows = torch.arange(len(questions), device=questions.device)  # (Q,)
    for word in (a, b, c):
        sims[rows, word] = -float("inf")
    return torch.where(known, sims.argmax(-1), -1), known


def analogy_score(predicted: Tensor, expected: Tensor, known: Tensor) -> Tensor:
    """``[accuracy, coverage]`` ``(2,)`` float64: share of the ``known`` ``(Q,)`` questions whose ``predicted``
    ``(Q,)`` id is the ``expected`` ``(Q,)`` one, and share of questions known (https://kexue.fm/archives/4208).
    Accuracy is NaN, not a number, when no question is known (:mod:`kexue.metrics.missing`)."""
    if not predicted.shape == expected.shape == known.shape or predicted.ndim != 1:
        raise ValueError(f"expected predicted, expected and known of one shape (Q,), got {tuple(predicted.shape)}, "
                         f"{tuple(expected.shape)}, {tuple(known.shape)}")
    known = known.bool()
    correct = (known & (predicted == expected)).double().sum()
    answered = known.double().sum()
    accuracy = correct / answered if answered > 0 else correct * math.nan
    return torch.stack([accuracy, answered / max(1, len(known))]).cpu()


class WordSimilarity(ExampleMetric):
    """:func:`word_similarity_score` over every pair seen, gathered across ranks: the Spearman correlation of the
    word vectors' cosines with human scores (wordsim353, simlex999; https://kexue.fm/archives/4208).

    ``update(vectors (V, D), pairs (B, 2), scores (B,), ids=None)``: ``pairs`` are word ids (``-1``: not in the
    vocabulary), ``ids`` ``(B,)`` the pairs' dataset indices. ``compute()`` -> ``(2,)`` ``[spearman, coverage]``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_rows("cosines", "scores", "known")

    def update(self, vectors: Tensor, pairs: Tensor, scores: Tensor, ids: Tensor | None = None) -> None:
        cosines, known = pair_cosines(vectors.detach(), pairs)  # (B,), (B,)
        self.cosines.append(cosines.double())
        self.scores.append(scores.detach().double().reshape(-1))
        self.known.append(known)
        self.add_ids(ids, len(known))

    def compute(self) -> Tensor:
        return word_similarity_score(*self.rows())


class AnalogyAccuracy(ExampleMetric):
    """:func:`analogy_score` of the 3CosAdd answers (:func:`analogy_predictions`) over every question seen,
    gathered across ranks (the Google analogies; https://kexue.fm/archives/4208).

    ``update(vectors (V, D), questions (B, 4), candidates=None, ids=None)``: ``questions`` are word ids (``-1``:
    not in the vocabulary), ``candidates`` how many of the most frequent words may answer, ``ids`` ``(B,)`` the
    questions' dataset indices. ``compute()`` -> ``(2,)`` ``[accuracy, coverage]``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_rows("predicted", "expected", "known")

    def update(self, vectors: Tensor, questions: Tensor, candidates: int | None = None,
               ids: Tensor | None = None) -> None:
        predicted, known = analogy_predictions(vectors.detach(), questions, candidates)  # (B,), (B,)
        self.predicted.append(predicted)
        self.expected.append(questions[:, 3].long())
        self.known.append(known)
        self.add_ids(ids, len(known))

    def compute(self) -> Tensor:
        return analogy_score(*self.rows())


__all__ = [
    "AnalogyAccuracy",
    "WordSimilarity",
    "analogy_predictions",
    "analogy_score",
    "pair_cosines",
    "unit_rows",
    "word_similarity_score",
]
