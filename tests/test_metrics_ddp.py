"""RetrievalTopK, SimilarityCorrelation and SpanF1 under 2-process DDP (CPU, gloo) equal their one-process value.

``DistributedSampler`` pads the last batch of each rank with repeated examples; with the examples' dataset
indices passed as ``ids`` a repeat counts once and never retrieves its own copy (issue 15). The data below is
chosen so that the padding *does* change the value when the ids are left out (checked too: the test can fail).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DistributedSampler

from kexue.metrics import RetrievalTopK, SimilarityCorrelation, SpanF1, first_occurrences
from kexue.tests.helpers import run_in_process_group

WORLD = 2
BATCH = 2
N = 7  # odd: the sampler repeats example 0 to give both ranks 4


def _data() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    vectors = torch.randn(N, 4, generator=gen)  # (N, 4)
    groups = torch.tensor([0, 1, 1, 2, 2, 3, 3])  # example 0 alone: only its padded copy would be its "partner"
    preds = torch.tensor([5.0, 0.1, 0.4, 0.2, 0.9, 0.3, 0.8], dtype=torch.float64)  # example 0: an outlier
    target = torch.tensor([0.0, 0.2, 0.5, 0.1, 0.8, 0.4, 0.7], dtype=torch.float64)
    # B/M/E/S tag ids (B=0, M=1, E=2, S=3), -1 past the end; sentence 0 is all wrong, so repeating it lowers F1.
    tags_pred = torch.tensor([[3, 3, 3, 3], [0, 2, 3, -1], [3, 3, -1, -1], [0, 1, 2, -1],
                              [0, 2, 0, 2], [3, -1, -1, -1], [0, 2, -1, -1]])  # fmt: skip
    tags_gold = torch.tensor([[0, 1, 1, 2], [0, 2, 3, -1], [0, 2, -1, -1], [0, 1, 2, -1],
                              [0, 2, 0, 2], [3, -1, -1, -1], [0, 2, -1, -1]])  # fmt: skip
    return {"vectors": vectors, "groups": groups, "preds": preds, "target": target,
            "tags_pred": tags_pred, "tags_gold": tags_gold}  # fmt: skip


def _metrics() -> dict[str, Any]:
    return {"retrieval": RetrievalTopK((1, 2)), "correlation": SimilarityCorrelation(), "span_f1": SpanF1("BMES")}


def _update(metrics: dict[str, Any], data: dict[str, Any], idx: torch.Tensor, ids: torch.Tensor | None) -> None:
    metrics["retrieval"].update(data["vectors"][idx], data["groups"][idx], ids)
    metrics["correlation"].update(data["preds"][idx], data["target"][idx], ids)
    metrics["span_f1"].update(data["tags_pred"][idx], data["tags_gold"][idx], ids)


def _values(metrics: dict[str, Any]) -> dict[str, list[float]]:
    return {name: metric.compute().tolist() for name, metric in metrics.items()}


def _worker(rank: int) -> dict[bool, dict[str, list[float]]]:
    data = _data()
    results = {}
    for with_ids in (True, False):
        metrics = _metrics()
        order = list(DistributedSampler(range(N), num_replicas=WORLD, rank=rank, shuffle=False))
        for start in range(0, len(order), BATCH):
            idx = torch.tensor(order[start : start + BATCH])  # (b,) dataset indices, padding included
            _update(metrics, data, idx, idx if with_ids else None)
        results[with_ids] = _values(metrics)  # synced across both ranks
    return results


def test_first_occurrences_keeps_one_row_per_id_in_id_order() -> None:
    ids = torch.tensor([4, 0, 2, 4, 0, 1])
    assert first_occurrences(ids).tolist() == [1, 5, 2, 0]  # ids 0, 1, 2, 4 first seen at these positions


def test_metrics_equal_one_process_value_under_two_process_ddp() -> None:
    data = _data()
    single = _metrics()
    for start in range(0, N, BATCH):
        _update(single, data, torch.arange(start, min(start + BATCH, N)), None)
    expected = _values(single)

    results = run_in_process_group(_worker, WORLD)
    for rank in range(WORLD):
        with_ids, without_ids = results[rank][True], results[rank][False]
        for name, value in expected.items():
            assert with_ids[name] == pytest.approx(value, abs=1e-9), (rank, name)
            # Without ids the padded repeat of example 0 changes every value: the data exercise the padding.
            assert without_ids[name] != pytest.approx(value, abs=1e-6), (rank, name)
