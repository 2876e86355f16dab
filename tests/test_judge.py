"""The digit judge and the sample-quality math (kexue.fm/archives/5716): inception score against a brute-force loop
and its known extremes, the Fréchet distance against scipy.linalg.sqrtm, the judge's split and cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue.models.judge import JudgeConfig, _shifted, frechet_distance, inception_score, judge_classifier, judge_splits


def brute_force_inception_score(probs: np.ndarray) -> float:
    marginal = [sum(row[c] for row in probs) / len(probs) for c in range(probs.shape[1])]
    kls = [sum(p * math.log(p / marginal[c]) for c, p in enumerate(row) if p > 0) for row in probs]
    return math.exp(sum(kls) / len(kls))


def test_inception_score_matches_brute_force_and_extremes() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0] = [1.0, 0.0, 0.0, 0.0]  # a zero probability: 0 log 0 = 0
    assert inception_score(torch.tensor(probs)) == pytest.approx(brute_force_inception_score(probs), rel=1e-10)
    same = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).repeat(5, 1)
    assert inception_score(same) == pytest.approx(1.0, abs=1e-12)  # identical predictions
    assert inception_score(torch.eye(10).repeat(3, 1)) == pytest.approx(10.0, rel=1e-12)  # confident, all classes
    assert inception_score(torch.eye(10)[[0, 0, 1, 1]]) == pytest.approx(2.0, rel=1e-12)  # confident, 2 classes
    with pytest.raises(ValueError, match="probs"):
        inception_score(torch.ones(3))


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(30, 6)) @ rng.normal(size=(6, 6)) + 0.5
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = sqrtm(cov_a @ cov_b).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(torch.tensor(a), torch.tensor(a)) == pytest.approx(0.0, abs=1e-8)
    # equal covariances: the distance is the squared distance of the means
    assert frechet_distance(torch.tensor(a), torch.tensor(a + 2.0)) == pytest.approx(4.0 * 6, rel=1e-8)
    with pytest.raises(ValueError, match="features"):
        frechet_distance(torch.ones(4, 3), torch.ones(4, 2))


def test_judge_split_is_the_datamodules_split() -> None:
    from kexue.datamodules.images import ImageDataModule

    dm = ImageDataModule(dataset="digits")
    dm.setup("fit")
    splits = judge_splits("digits")
    for name in ("train", "val", "test"):
        assert torch.equal(splits[name][0], dm.splits[name][0]) and torch.equal(splits[name][1], dm.splits[name][1])


def test_shift_moves_each_image_by_its_own_offset() -> None:
    x = torch.zeros(64, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    out = _shifted(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(out.sum((1, 2, 3)) == 1)  # the dot stays inside, moved
    positions = {tuple(torch.nonzero(o[0])[0].tolist()) for o in out}
    assert positions == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}


def test_judge_trains_caches_and_scores(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEXUE_CACHE", str(tmp_path))
    tiny = dict(epochs=8, channels=(8, 16), features=16, lr=1e-2)
    judge = judge_classifier("digits", **tiny)
    files = list((tmp_path / "judges").glob("digits-*.pt"))
    assert len(files) == 1 and JudgeConfig(dataset="digits", shift=0, **tiny).key() in files[0].name
    assert judge.test_accuracy > 0.5  # 10 classes: chance is 0.1
    again = judge_classifier("digits", **tiny)  # from the file: same weights, no training
    x = judge_splits("digits")["test"][0][:20]
    features, logits = judge.features_and_logits(x)
    assert features.shape == (20, 16) and logits.shape == (20, 10)
    assert torch.equal(again(x), logits) and again.test_accuracy == judge.test_accuracy
    assert not any(p.requires_grad for p in again.parameters())
    assert judge(x.squeeze(1)).shape == (20, 10)  # (B, H, W) too
    big = torch.nn.functional.interpolate(x, size=(28, 28))
    assert judge(big).shape == (20, 10)  # resized to its side
    files[0].write_bytes(b"broken")  # a damaged cache file is replaced, not fatal
    assert torch.equal(judge_classifier("digits", **tiny)(x), logits)
    with pytest.raises(ValueError, match="judge dataset"):
        judge_classifier("cifar")


def test_judge_trains_inside_inference_mode(tmp_path, monkeypatch) -> None:
    """The first validation loop of `kexue run gan` on a machine without a cached judge trains it under Lightning's
    inference mode: that must still train (it failed on a clean CI machine) and give ordinary tensors."""
    monkeypatch.setenv("KEXUE_CACHE", str(tmp_path))
    tiny = dict(epochs=2, channels=(4, 8), features=8, lr=1e-2)
    with torch.inference_mode():
        judge = judge_classifier("digits", **tiny)
    assert not any(p.is_inference() for p in judge.parameters())
    assert list((tmp_path / "judges").glob("digits-*.pt"))
