"""Span-level precision / recall / F1 for sequence labelling: words for segmentation, entities for NER.

Functional forms (:func:`bmes_spans`, :func:`bio_spans`, :func:`span_f1`) hold the math; :class:`SpanF1`
is the torchmetrics state around them. Word scores follow the SIGHAN bakeoff scorer: a predicted word is
correct when the same characters form a word in the gold segmentation, i.e. its ``(start, end)`` span
is a gold span; precision = correct / predicted words, recall = correct / gold words. Entity scores are
the conlleval ones: an entity counts when its span and type both match. Posts: 简明条件随机场CRF介绍
(https://kexue.fm/archives/5542), CRF用过了,不妨再了解下更快的MEMM? (https://kexue.fm/archives/7213).

Also retrieval top-k accuracy of sentence vectors (:func:`retrieval_topk_accuracy`, :class:`RetrievalTopK`,
kexue.fm/archives/5743) and the Pearson / Spearman agreement of a similarity with human scores
(:func:`similarity_correlation`, :class:`SimilarityCorrelation`, :class:`SpearmanCorrelation`,
kexue.fm/archives/7388, 4208). The metric classes keep one row per example (:class:`ExampleMetric`); given the
examples' dataset indices as ``ids`` they count an example that DDP's ``DistributedSampler`` repeated once, so
their value under DDP equals the one-process value.

Generated text (:mod:`kexue.metrics.generated_text`: distinct-n, copy rate), generated-image quality
(:mod:`kexue.metrics.images`), extractive QA (:mod:`kexue.metrics.qa`) and word vectors
(:mod:`kexue.metrics.word_vectors`) live in their own modules, re-exported at the end.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from kexue.metrics.missing import log_score

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


def first_occurrences(ids: Tensor) -> Tensor:
    """Positions ``(U,)`` of the first occurrence of each distinct example id in ``ids`` ``(N,)``, in ascending
    id order: what a metric keeps of the examples gathered from DDP ranks.

    ``DistributedSampler`` pads the last batches with repeated examples so that every rank gets as many; their
    ids repeat, and keeping one row per id (sorted by id = dataset order) gives back the one-process set.
    """
    if ids.ndim != 1:
        raise ValueError(f"expected example ids of shape (N,), got {tuple(ids.shape)}")
    uniq, inverse = torch.unique(ids, return_inverse=True)  # (U,) ascending, (N,)
    positions = torch.arange(len(ids), device=ids.device)  # (N,)
    first = torch.full((len(uniq),), len(ids), dtype=torch.long, device=ids.device)  # (U,)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")  # (U,)


class ExampleMetric(Metric):
    """A torchmetrics ``Metric`` whose list states hold one row per example, plus optional example ids so that
    examples repeated by ``DistributedSampler``'s padding count once (issue 15; shared by the metrics below).

    Subclasses register their per-example list states with :meth:`add_rows` and call :meth:`rows` in
    ``compute``; ``update(..., ids=None)`` passes the ``(B,)`` dataset indices of the batch's examples (always,
    or never, within one epoch).
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.row_states: list[str] = []
        self.add_state("ids", default=[], dist_reduce_fx="cat")

    def add_rows(self, *names: str) -> None:
        """Register list states ``names`` holding one row (first dimension) per example, gathered by ``cat``."""
        for name in names:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.row_states.extend(names)

    def add_ids(self, ids: Tensor | None, count: int) -> None:
        """Record the example ids ``(B,)`` of an update of ``count`` examples (``None``: no ids this run)."""
        if ids is None:
            return
        if ids.shape != (count,):
            raise ValueError(f"ids must be one example index per row, shape ({count},), got {tuple(ids.shape)}")
        self.ids.append(ids.detach().long().reshape(-1))

    def rows(self) -> list[Tensor]:
        """The row states, concatenated over updates (and ranks), one row per distinct example id."""
        from torchmetrics.utilities import dim_zero_cat

        tensors = [dim_zero_cat(getattr(self, name)) if len(getattr(self, name)) else torch.zeros(0)
                   for name in self.row_states]
        ids = self.ids if isinstance(self.ids, Tensor) else (torch.cat(self.ids) if self.ids else None)
        if ids is None or not len(ids):
            return tensors
        if len(ids) != len(tensors[0]):
            raise ValueError(f"{type(self).__name__}: {len(ids)} ids for {len(tensors[0])} examples: pass ids "
                             "with every update or with none")
        keep = first_occurrences(ids)  # (U,)
        return [t[keep] for t in tensors]


class CountF1(ExampleMetric):
    """Precision / recall / F1 from one ``(correct, predicted, gold)`` count row per example, summed over the distinct
    examples of all ranks: the shared state of :class:`SpanF1` and :class:`TripleF1`. Subclasses turn a batch into
    count rows and call :meth:`add_counts`; ``compute()`` -> ``(3,)`` tensor ``[precision, recall, f1]``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_rows("counts")  # (N, 3): correct, predicted, gold per example

    def add_counts(self, counts: list[tuple[int, int, int]], ids: Tensor | None) -> None:
        """Append a batch's count rows, with the examples' dataset ``ids`` ``(B,)`` (see :class:`ExampleMetric`)."""
        self.counts.append(torch.tensor(counts, dtype=torch.float64, device=self.device).reshape(-1, 3))  # (B, 3)
        self.add_ids(ids, len(counts))

    items = "spans"  # what the counts count, named where a score has none under it (log_span_f1)

    def compute(self) -> Tensor:
        (counts,) = self.rows()
        correct, predicted, gold = counts.reshape(-1, 3).sum(0).tolist()
        self.totals = (correct, predicted, gold)  # summed over the ranks, for log_span_f1's coverage
        return torch.tensor(span_f1(correct, predicted, gold))


class SpanF1(CountF1):
    """Span precision / recall / F1 over batches of tag ids (https://kexue.fm/archives/5542).

    Args:
        tags: tag names in id order; ``I-`` tags select the BIO reading (entity F1), else B/M/E/S
            (word F1 for unlabelled ``B, M, E, S``).

    ``update(preds, target, ids=None)``: ``(B, T)`` integer tag ids, ``-1`` (or any negative) past each
    sequence's end; ``ids`` ``(B,)`` the sentences' dataset indices, so that a sentence repeated by DDP padding
    counts once. ``compute()`` -> ``(3,)`` tensor ``[precision, recall, f1]`` of the counts summed over the
    distinct sentences of all ranks.
    """

    def __init__(self, tags: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.spans = bio_spans if any(t.startswith("I-") for t in self.tags) else bmes_spans

    def update(self, preds: Tensor, target: Tensor, ids: Tensor | None = None) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"preds and target must have the same shape (B, T), "
                             f"got {tuple(preds.shape)} and {tuple(target.shape)}")
        counts = []
        for p_row, t_row in zip(preds.tolist(), target.tolist()):
            n = sum(1 for t in t_row if t >= 0)
            p_spans = self.spans([self.tags[i] for i in p_row[:n]])
            t_spans = self.spans([self.tags[i] for i in t_row[:n]])
            counts.append((len(p_spans & t_spans), len(p_spans), len(t_spans)))
        self.add_counts(counts, ids)


# --- Retrieval top-k accuracy (基于GRU和AM-Softmax的句子相似度模型, https://kexue.fm/archives/5743) ---


def retrieval_topk_accuracy(
    vectors: Tensor, groups: Tensor, ks: Sequence[int] = (1, 5, 10), chunk_size: int = 1024
) -> Tensor:
    """Top-k retrieval accuracy of sentence vectors, the evaluation of kexue.fm/archives/5743.

    Every sentence that has at least one other sentence of its group is a query; the gallery is all
    the other sentences (never the query itself). A query scores a hit at ``k`` when its ``k``
    nearest neighbours by cosine hold a sentence of its group. Sentences alone in their group are
    distractors only.

    Args:
        vectors: ``(N, D)`` sentence vectors (any norm; compared by cosine).
        groups: ``(N,)`` integer group ids.
        ks: the ``k`` values.
        chunk_size: queries scored at once (the ``(chunk, N)`` similarity block bounds the memory).

    Returns:
        ``(len(ks),)`` float64 tensor of hit rates over the queries (0 where there are none).
    """
    if vectors.ndim != 2 or groups.shape != vectors.shape[:1]:
        raise ValueError(
            f"expected vectors (N, D) and groups (N,), got {tuple(vectors.shape)} and {tuple(groups.shape)}"
        )
    n = len(vectors)
    unit = torch.nn.functional.normalize(vectors if vectors.is_floating_point() else vectors.float(), dim=-1)  # (N, D)
    k_max = min(max(ks), n - 1)
    hits = torch.zeros(len(ks), dtype=torch.float64)
    queries = 0
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n), device=vectors.device)  # (Q,)
        sim = unit[rows] @ unit.T  # (Q, N)
        sim[torch.arange(len(rows)), rows] = float("-inf")  # a sentence never retrieves itself
        same = groups[rows, None] == groups[None, :]  # (Q, N)
        same[torch.arange(len(rows)), rows] = False
        has_partner = same.any(1)  # (Q,)
        if k_max < 1 or not has_partner.any():
            continue
        nearest = sim[has_partner].topk(k_max, dim=1).indices  # (Q', k_max)
        found = same[has_partner].gather(1, nearest)  # (Q', k_max): neighbour i is of the query's group
        for j, k in enumerate(ks):
            hits[j] += found[:, :k].any(1).sum().item()
        queries += int(has_partner.sum())
    return hits / queries if queries else hits


class RetrievalTopK(ExampleMetric):
    """:func:`retrieval_topk_accuracy` over every vector seen (kexue.fm/archives/5743).

    ``update(vectors (B, D), groups (B,), ids=None)`` keeps the vectors; ``ids`` ``(B,)`` are the sentences'
    dataset indices, so that a sentence repeated by DDP padding is one sentence (it neither counts twice as a
    query nor retrieves its own copy). ``compute()`` ranks all distinct sentences (gathered across ranks)
    against each other -> ``(len(ks),)`` hit rates. Group ids must be unique per group across the whole
    evaluation set.
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 10), **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = tuple(ks)
        self.add_rows("vectors", "groups")

    def update(self, vectors: Tensor, groups: Tensor, ids: Tensor | None = None) -> None:
        self.vectors.append(vectors.detach().float())  # (B, D)
        self.groups.append(groups.detach())  # (B,)
        self.add_ids(ids, len(vectors))

    def compute(self) -> Tensor:
        return retrieval_topk_accuracy(*self.rows(), self.ks)


def similarity_correlation(preds: Tensor, target: Tensor) -> Tensor:
    """``[Pearson, Spearman]`` (``(2,)`` float64) of predicted similarities ``(N,)`` with human scores ``(N,)``.

    The corpus-level agreement of a text similarity with people (https://kexue.fm/archives/7388). Spearman
    ranks ties by their average rank, as scipy does.
    """
    from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

    if preds.ndim != 1 or preds.shape != target.shape or len(preds) < 2:
        raise ValueError(f"expected preds and target of the same shape (N,), N >= 2, got "
                         f"{tuple(preds.shape)} and {tuple(target.shape)}")
    preds, target = preds.double(), target.double()
    return torch.stack([pearson_corrcoef(preds, target), spearman_corrcoef(preds, target)])


class SimilarityCorrelation(ExampleMetric):
    """:func:`similarity_correlation` over every pair seen, gathered across ranks (kexue.fm/archives/7388).

    ``update(preds (B,), target (B,), ids=None)``: a similarity (higher = more alike; pass ``-distance``) and
    the human score of each pair; ``ids`` ``(B,)`` the pairs' dataset indices, so that a pair repeated by DDP
    padding counts once. ``compute()`` -> ``(2,)`` tensor ``[pearson, spearman]``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_rows("preds", "target")

    def update(self, preds: Tensor, target: Tensor, ids: Tensor | None = None) -> None:
        self.preds.append(preds.detach().double().reshape(-1))  # (B,)
        self.target.append(target.detach().double().reshape(-1))  # (B,)
        self.add_ids(ids, len(self.preds[-1]))

    def compute(self) -> Tensor:
        return similarity_correlation(*self.rows())


class SpearmanCorrelation(SimilarityCorrelation):
    """The Spearman half of :class:`SimilarityCorrelation`: a ``()`` tensor, the word-similarity score of
    SVD分解(三) (https://kexue.fm/archives/4208) when ``preds`` are cosines of word vectors (``(P,)``) and
    ``target`` human ratings (``(P,)``)."""

    def compute(self) -> Tensor:
        return super().compute()[1]


# --- Logging span scores (简明条件随机场CRF介绍, https://kexue.fm/archives/5542) ---


def log_span_f1(module: torch.nn.Module, metric: SpanF1, stage: str) -> None:
    """Log ``{stage}/precision``, ``{stage}/recall`` and ``{stage}/f1`` of ``metric`` on the LightningModule
    ``module``, then reset it.

    Call it at the end of a validation or test epoch: :meth:`SpanF1.compute` sums the counts across ranks,
    so every rank logs the same three scalars (``f1`` of the validation epoch also goes to the progress bar).
    A score with nothing under it is not a number (:mod:`kexue.metrics.missing`): recall and F1 of a split with no
    gold span or triple, precision of a model that predicted none; the CLI prints why instead.
    """
    precision, recall, f1 = metric.compute().tolist()
    _, predicted, gold = metric.totals
    metric.reset()
    no_gold = f"the {stage} split has no gold {metric.items}"
    log_score(module, f"{stage}/precision", precision, int(predicted), f"the model predicted no {metric.items}")
    log_score(module, f"{stage}/recall", recall, int(gold), no_gold)
    log_score(module, f"{stage}/f1", f1, int(gold), no_gold, prog_bar=stage == "val")


# --- Triple extraction (用bert4keras做三元组抽取, https://kexue.fm/archives/7161) ---

Triple = tuple[str, str, str]  # (subject, predicate, object), as kexue.data.duie.Triple


def _triple_counts(pred: set[Triple], gold: set[Triple]) -> tuple[int, int, int]:
    """``(correct, predicted, gold)`` distinct triples of one sentence (any iterables; repeats count once)."""
    pred, gold = set(pred), set(gold)
    return len(pred & gold), len(pred), len(gold)


def triple_prf(pred: Sequence[set[Triple]], gold: Sequence[set[Triple]]) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` of predicted triples against gold ones, micro over sentences, as LIC2019 and
    kexue.fm/archives/7161 score them.

    ``pred[i]`` and ``gold[i]`` are the triples of sentence ``i`` (sets, or any iterables: a repeated triple
    counts once). A triple is correct when its subject, predicate and object strings all equal a gold triple's
    of the same sentence; precision = correct / predicted, recall = correct / gold, summed over all sentences.
    A zero denominator gives 0 (the post adds 1e-10 to each count instead, so its precision with no
    predictions is 1).
    """
    if len(pred) != len(gold):
        raise ValueError(f"pred and gold must hold one triple set per sentence, got {len(pred)} and {len(gold)}")
    counts = [_triple_counts(p, g) for p, g in zip(pred, gold)]
    correct, predicted, total = (sum(column) for column in zip(*counts)) if counts else (0, 0, 0)
    return span_f1(correct, predicted, total)


class TripleF1(CountF1):
    """:func:`triple_prf` over batches of sentences (https://kexue.fm/archives/7161).

    ``update(preds, target, ids=None)``: ``B`` predicted and ``B`` gold triple sets; ``ids`` ``(B,)`` the
    sentences' dataset indices. ``compute()`` -> ``(3,)`` tensor ``[precision, recall, f1]`` of the counts summed
    over the distinct sentences of all ranks (log it with :func:`log_span_f1`).

    It keeps one ``(correct, predicted, gold)`` row per sentence (3 float64s) rather than three sum-reduced
    totals: ``DistributedSampler`` repeats sentences to pad the last batches, and totals cannot tell a repeat
    from a sentence, while rows with ids keep one per sentence, so the DDP value equals the one-process value.
    """

    items = "triples"

    def update(self, preds: Sequence[set[Triple]], target: Sequence[set[Triple]], ids: Tensor | None = None) -> None:
        if len(preds) != len(target):
            raise ValueError(f"preds and target must hold one triple set per sentence, "
                             f"got {len(preds)} and {len(target)}")
        self.add_counts([_triple_counts(p, g) for p, g in zip(preds, target)], ids)


# The metrics of other rooms, re-exported after this module's own blocks (which they import): generated-image quality
# (kexue.fm/archives/5716), extractive-QA answers (7115) and word-vector evaluation, each score with its coverage.
from kexue.metrics.generated_text import copy_rate, distinct_n  # noqa: E402, F401
from kexue.metrics.images import (  # noqa: E402, F401
    FrechetDistance,
    InceptionScore,
    frechet_distance,
    frechet_distance_from_moments,
    inception_score,
)
from kexue.metrics.missing import not_computed  # noqa: E402, F401
from kexue.metrics.qa import CharF1, ExactMatch, char_f1, exact_match  # noqa: E402, F401
from kexue.metrics.word_vectors import (  # noqa: E402, F401
    AnalogyAccuracy,
    WordSimilarity,
    analogy_predictions,
    analogy_score,
    pair_cosines,
    word_similarity_score,
)
