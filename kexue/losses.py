"""Losses from the kexue.fm posts, each as a function (the math) and a thin ``nn.Module``.

- :func:`threshold_cross_entropy`: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def threshold_cross_entropy(logits: Tensor, target: Tensor, margin: float = 0.6, reduction: str = "mean") -> Tensor:
    """Cross-entropy that ignores samples already classified with margin (kexue.fm/archives/4293).

    The post multiplies the usual loss by ``λ(y, ŷ) = 1 - θ(ŷ_y - m)``: a sample whose predicted
    probability for its true class is already above ``m`` contributes nothing (neither loss nor
    gradient), so training concentrates on the samples that are not yet right with margin. With
    ``m = 0.5`` and two classes this is "only learn from mistakes"; ``m → 1`` recovers plain
    cross-entropy.

    Args:
        logits: ``(B, C)`` unnormalised class scores.
        target: ``(B,)`` class indices.
        margin: ``m`` in ``(0, 1]``; the post uses 0.6.
        reduction: ``"mean"`` (over all B samples, as the post's Keras loss does, zeros included),
            ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        Scalar loss, or ``(B,)`` per-sample losses with ``reduction="none"``.
    """
    if not 0.0 < margin <= 1.0:
        raise ValueError(f"margin must be in (0, 1], got {margin}")
    log_p = F.log_softmax(logits, dim=-1)  # (B, C)
    log_p_true = log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B,)
    # θ(ŷ_y - m) is a step: no gradient flows through the mask itself, only through -log ŷ_y.
    keep = (log_p_true.detach().exp() <= margin).to(log_p.dtype)  # (B,)
    loss = -log_p_true * keep  # (B,)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class ThresholdCrossEntropy(nn.Module):
    """Module form of :func:`threshold_cross_entropy`; ``forward(logits (B, C), target (B,))``."""

    def __init__(self, margin: float = 0.6, reduction: str = "mean") -> None:
        super().__init__()
        self.margin, self.reduction = margin, reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return threshold_cross_entropy(logits, target, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def classification_loss(name: str, margin: float = 0.6) -> nn.Module:
    """The loss a config names: ``"ce"`` (cross-entropy) or ``"threshold"`` (the post's loss)."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "threshold":
        return ThresholdCrossEntropy(margin)
    raise ValueError(f"unknown loss {name!r}: expected 'ce' or 'threshold'")


__all__ = ["threshold_cross_entropy", "ThresholdCrossEntropy", "classification_loss"]
