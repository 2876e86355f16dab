"""kexue.metrics.images (kexue.fm/archives/5716): the Inception-like score against a brute-force loop and its known
extremes, the Fréchet distance against scipy.linalg.sqrtm, and each Metric against its function, also with the
updates split over two metrics whose sum states are merged, and synced by two gloo processes as under DDP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue.metrics import FrechetDistance, InceptionScore, frechet_distance, inception_score
from kexue.tests.helpers import run_in_process_group


def brute_force_inception_score(probs: np.ndarray) -> float:
    marginal = [sum(row[c] for row in probs) / len(probs) for c in range(probs.shape[1])]
    kls = [sum(p * math.log(p / marginal[c]) for c, p in enumerate(row) if p > 0) for row in probs]
    return math.exp(sum(kls) / len(kls))


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real))


def _probs(n: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0] = [1.0, 0.0, 0.0, 0.0]  # a zero probability: 0 log 0 = 0
    return probs


def _features(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)),
            rng.normal(size=(30, 6)) @ rng.normal(size=(6, 6)) + 0.5)


def test_inception_score_matches_brute_force_and_extremes() -> None:
    probs = _probs(7, 0)
    assert float(inception_score(torch.tensor(probs))) == pytest.approx(brute_force_inception_score(probs), rel=1e-10)
    same = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).repeat(5, 1)
    assert float(inception_score(same)) == pytest.approx(1.0, abs=1e-12)  # identical predictions
    assert float(inception_score(torch.eye(10).repeat(3, 1))) == pytest.approx(10.0, rel=1e-12)  # confident, all
    assert float(inception_score(torch.eye(10)[[0, 0, 1, 1]])) == pytest.approx(2.0, rel=1e-12)  # 2 classes
    with pytest.raises(ValueError, match="probs"):
        inception_score(torch.ones(3))


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    a, b = _features(1)
    assert float(frechet_distance(torch.tensor(a), torch.tensor(b))) == pytest.approx(scipy_frechet(a, b), rel=1e-8)
    assert float(frechet_distance(torch.tensor(a), torch.tensor(a))) == pytest.approx(0.0, abs=1e-8)
    # equal covariances: the distance is the squared distance of the means
    assert float(frechet_distance(torch.tensor(a), torch.tensor(a + 2.0))) == pytest.approx(4.0 * 6, rel=1e-8)
    with pytest.raises(ValueError, match="features"):
        frechet_distance(torch.ones(4, 3), torch.ones(4, 2))


def test_inception_metric_in_batches_and_merged_is_the_one_process_score() -> None:
    probs = torch.tensor(_probs(11, 2), dtype=torch.float32)
    expected = brute_force_inception_score(probs.double().numpy())
    whole = InceptionScore(num_classes=4)
    for part in probs.split(3):
        whole.update(part)
    assert float(whole.compute()) == pytest.approx(expected, rel=1e-6)
    # Two processes' states (uneven shares), merged by the states' reductions as DDP's sync does.
    first, second = InceptionScore(num_classes=4), InceptionScore(num_classes=4)
    first.update(probs[:4])
    second.update(probs[4:])
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx(expected, rel=1e-6)
    alone = InceptionScore(num_classes=4)
    alone.update(probs[:4])
    assert float(alone.compute()) != pytest.approx(expected, rel=1e-3)  # the merge mattered
    assert all(InceptionScore()._reductions[name] is not None for name in ("neg_entropy_sum", "prob_sum", "count"))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # compute() after reset(): what the test asks
def test_frechet_metric_in_batches_and_merged_is_the_one_process_distance() -> None:
    a, b = _features(3)
    expected = scipy_frechet(a, b)
    ta, tb = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    expected_32 = scipy_frechet(ta.double().numpy(), tb.double().numpy())
    whole = FrechetDistance(num_features=6)
    for part in ta.split(7):
        whole.update(part, real=True)
    for part in tb.split(9):
        whole.update(part, real=False)
    assert float(whole.compute()) == pytest.approx(expected_32, rel=1e-6)
    assert expected_32 == pytest.approx(expected, rel=1e-4)
    first, second = FrechetDistance(num_features=6), FrechetDistance(num_features=6)
    first.update(ta[:25], real=True), first.update(tb[:10], real=False)
    second.update(ta[25:], real=True), second.update(tb[10:], real=False)
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx(expected_32, rel=1e-6)
    first.reset()
    with pytest.raises(ValueError, match="0 real feature rows"):
        first.compute()


def _synced_scores(rank: int) -> list[float]:
    """IS and FD computed (and so synced) in a 2-process group, rank ``r`` holding rows ``r, r + 2, ...``."""
    probs = torch.tensor(_probs(11, 2), dtype=torch.float32)
    real, fake = (torch.tensor(f, dtype=torch.float32) for f in _features(3))
    score, distance = InceptionScore(num_classes=4), FrechetDistance(num_features=6)
    score.update(probs[rank::2])
    distance.update(real[rank::2], real=True)
    distance.update(fake[rank::2], real=False)
    return [float(score.compute()), float(distance.compute())]


def test_metrics_synced_over_two_processes_are_the_one_process_values() -> None:
    probs = torch.tensor(_probs(11, 2), dtype=torch.float32)
    real, fake = (torch.tensor(f, dtype=torch.float32) for f in _features(3))
    expected = [float(inception_score(probs)), float(frechet_distance(real, fake))]
    results = run_in_process_group(_synced_scores, 2)
    for rank in (0, 1):
        assert results[rank] == pytest.approx(expected, rel=1e-6)
    assert _synced_scores(0) != pytest.approx(expected, rel=1e-3)  # without the sync, one share's values
