"""Span-level precision / recall / F1 for sequence labelling: words for segmentation, entities for NER.

Functional forms (:func:`bmes_spans`, :func:`bio_spans`, :func:`span_f1`) hold the math; :class:`SpanF1`
is the torchmetrics state around them. Word scores follow the SIGHAN bakeoff scorer: a predicted word is
correct when the same characters form a word in the gold segmentation, i.e. its ``(start, end)`` span
is a gold span; precision = correct / predicted words, recall = correct / gold words. Entity scores are
the conlleval ones: an entity counts when its span and type both match. Posts: 简明条件随机场CRF介绍
(https://kexue.fm/archives/5542), CRF用过了,不妨再了解下更快的MEMM? (https://kexue.fm/archives/7213).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

Span = tuple[int, int, str]  # (start, end exclusive, label); label "" for plain words


def bmes_spans(tags: Sequence[str]) -> set[Span]:
    """Spans of a B/M/E/S(-X)/O tag sequence. Total on invalid sequences, as a softmax head can emit them.

    A span starts at every B, S or O-to-M/E step and ends after every E or S or before the next start;
    O characters belong to no span. For plain ``B/M/E/S`` (segmentation) the spans tile the sentence.
    """
    spans: set[Span] = set()
    start, label = None, ""
    for i, tag in enumerate(tags):
        prefix, _, lab = tag.partition("-")
        if prefix == "O":
            if start is not None:
                spans.add((start, i, label))
            start = None
            continue
        if prefix in "BS" or start is None or lab != label:
            if start is not None:
                spans.add((start, i, label))
            start, label = i, lab
        if prefix in "ES":
            spans.add((start, i + 1, label))
            start = None
    if start is not None:
        spans.add((start, len(tags), label))
    return spans


def bio_spans(tags: Sequence[str]) -> set[Span]:
    """Entity spans of a B-X/I-X/O sequence; an ``I-X`` not continuing an ``X`` starts one (as conlleval)."""
    spans: set[Span] = set()
    start, label = None, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, lab = tag.partition("-")
        if start is not None and (prefix != "I" or lab != label):
            spans.add((start, i, label))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, label = i, lab
    return spans


def span_f1(correct: float, predicted: float, gold: float) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` from counts; 0 where a denominator is 0."""
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


class SpanF1(Metric):
    """Span precision / recall / F1 over batches of tag ids (https://kexue.fm/archives/5542).

    Args:
        tags: tag names in id order; ``I-`` tags select the BIO reading (entity F1), else B/M/E/S
            (word F1 for unlabelled ``B, M, E, S``).

    ``update(preds, target)``: ``(B, T)`` integer tag ids, ``-1`` (or any negative) past each sequence's
    end. ``compute()`` -> ``(3,)`` tensor ``[precision, recall, f1]``; the counts are summed across ranks.
    """

    full_state_update = False

    def __init__(self, tags: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.spans = bio_spans if any(t.startswith("I-") for t in self.tags) else bmes_spans
        for name in ("correct", "predicted", "gold"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"preds and target must have the same shape (B, T), "
                             f"got {tuple(preds.shape)} and {tuple(target.shape)}")
        correct = predicted = gold = 0
        for p_row, t_row in zip(preds.tolist(), target.tolist()):
            n = sum(1 for t in t_row if t >= 0)
            p_spans = self.spans([self.tags[i] for i in p_row[:n]])
            t_spans = self.spans([self.tags[i] for i in t_row[:n]])
            correct, predicted, gold = correct + len(p_spans & t_spans), predicted + len(p_spans), gold + len(t_spans)
        self.correct += correct
        self.predicted += predicted
        self.gold += gold

    def compute(self) -> Tensor:
        return torch.tensor(span_f1(self.correct.item(), self.predicted.item(), self.gold.item()))
