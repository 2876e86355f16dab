"""The digit judge (kexue.fm/archives/5716): its augmentation, training, cache, and training under inference mode.
Its split is ImageDataModule's by construction (kexue.data.images.split_rows); the scores are tested in
test_image_metrics.py."""

from __future__ import annotations

import pytest
import torch

from kexue.models.judge import JudgeConfig, _shifted, judge_classifier, judge_splits


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
