"""Answer scores of extractive question answering: exact match and character F1, each a plain function of one
answer (:func:`exact_match`, :func:`char_f1`) and a ``torchmetrics`` Metric averaging it over the examples
(:class:`ExactMatch`, :class:`CharF1`).

Post: 万能的seq2seq (https://kexue.fm/archives/7115), whose reading-comprehension example is scored by these two
(character F1 rather than word F1: Chinese answers have no word boundaries).

The Metrics hold two sum-reduced states, the summed score and the number of examples, so their value under DDP
is the mean over every process's examples (as one process over all of them would compute it).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when ``prediction`` equals one of ``answers`` (after stripping white space), else 0.0."""
    return float(any(prediction.strip() == a.strip() for a in answers))


def char_f1(prediction: str, answers: Iterable[str]) -> float:
    """The best over ``answers`` of the character F1: with ``c`` the characters in common (with multiplicity),
    ``2c / (len(prediction) + len(answer))``; white space ignored, 0 when either is empty."""
    pred = Counter(prediction.replace(" ", ""))
    best = 0.0
    for answer in answers:
        gold = Counter(answer.replace(" ", ""))
        common = sum((pred & gold).values())
        if common:
            best = max(best, 2 * common / (sum(pred.values()) + sum(gold.values())))
    return best


class AnswerScore(Metric):
    """The mean of ``score(prediction, answers)`` over examples; ``update(preds, answers)`` takes ``B`` predicted
    strings and ``B`` sequences of gold answers, ``compute()`` a scalar tensor (NaN before any example: a mean of
    nothing is not a number, :mod:`kexue.metrics.missing`)."""

    full_state_update = False
    higher_is_better = True
    score: Callable[[str, Iterable[str]], float]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str], answers: Sequence[Iterable[str]]) -> None:
        if len(preds) != len(answers):
            raise ValueError(f"one prediction per example: got {len(preds)} predictions for {len(answers)} examples")
        self.total += sum(type(self).score(p, a) for p, a in zip(preds, answers))
        self.count += len(preds)

    def compute(self) -> Tensor:
        return (self.total / self.count).float()  # 0 / 0: NaN


class ExactMatch(AnswerScore):
    """:func:`exact_match` averaged over examples (EM)."""

    score = staticmethod(exact_match)


class CharF1(AnswerScore):
    """:func:`char_f1` averaged over examples."""

    score = staticmethod(char_f1)


__all__ = ["AnswerScore", "CharF1", "ExactMatch", "char_f1", "exact_match"]
