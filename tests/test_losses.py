"""kexue.losses against naive per-sample loops (the formula of kexue.fm/archives/4293), and the one reduction."""

import math

import pytest
import torch
import torch.nn.functional as F

from kexue.losses import ThresholdCrossEntropy, classification_loss, reduce_loss, threshold_cross_entropy


def naive_threshold_loss(logits: torch.Tensor, target: torch.Tensor, margin: float) -> float:
    total = 0.0
    for row, y in zip(logits.tolist(), target.tolist()):
        z = max(row)
        probs = [math.exp(v - z) for v in row]
        p_true = probs[y] / sum(probs)
        total += 0.0 if p_true > margin else -math.log(p_true)
    return total / len(logits)


@pytest.mark.parametrize("margin", [0.5, 0.6, 0.9])
@pytest.mark.parametrize("num_classes", [2, 5])
def test_matches_naive_loop(margin: float, num_classes: int) -> None:
    g = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(64, num_classes, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, num_classes, (64,), generator=g)
    got = threshold_cross_entropy(logits, target, margin).item()
    assert got == pytest.approx(naive_threshold_loss(logits, target, margin), rel=1e-12)
    # The test set must exercise both branches, or it proves nothing.
    p_true = logits.softmax(-1).gather(1, target[:, None]).squeeze(1)
    assert (p_true > margin).any() and (p_true <= margin).any()


def test_confident_samples_get_no_gradient() -> None:
    logits = torch.tensor([[4.0, -4.0], [0.1, 0.0], [0.0, 3.0]], requires_grad=True)
    target = torch.tensor([0, 0, 0])  # confident right, barely right, confidently wrong
    threshold_cross_entropy(logits, target, 0.6).backward()
    assert torch.all(logits.grad[0] == 0)
    assert torch.all(logits.grad[1] != 0) and torch.all(logits.grad[2] != 0)


def test_margin_one_is_cross_entropy_and_reductions() -> None:
    logits, target = torch.randn(10, 3), torch.randint(0, 3, (10,))
    assert torch.allclose(threshold_cross_entropy(logits, target, 1.0), F.cross_entropy(logits, target))
    per_sample = threshold_cross_entropy(logits, target, 0.6, reduction="none")
    assert per_sample.shape == (10,)
    assert torch.allclose(threshold_cross_entropy(logits, target, 0.6, reduction="sum"), per_sample.sum())
    assert torch.allclose(ThresholdCrossEntropy(0.6)(logits, target), per_sample.mean())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="margin"):
        threshold_cross_entropy(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="reduction"):
        threshold_cross_entropy(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), reduction="avg")
    with pytest.raises(ValueError, match="unknown loss"):
        classification_loss("hinge")


def test_reduce_loss_reductions_and_token_mean() -> None:
    values = torch.tensor([1.0, 2.0, 6.0])
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])  # 6 real steps
    assert reduce_loss(values, "none") is values
    assert reduce_loss(values, "sum").item() == 9.0
    assert reduce_loss(values, "mean").item() == 3.0
    assert reduce_loss(values, "token_mean", mask).item() == 1.5  # 9 / 6 tokens
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'sum', 'mean'\), got 'token_mean'"):
        reduce_loss(values, "token_mean")  # a per-token mean needs the mask
    with pytest.raises(ValueError, match=r"one of \('none', 'sum', 'mean', 'token_mean'\), got 'avg'"):
        reduce_loss(values, "avg", mask)
