"""Losses from the kexue.fm posts, each as a function (the math) and a thin ``nn.Module``; all reduce
per-sample values with :func:`reduce_loss` (so do :mod:`kexue.nn.crf` and :mod:`kexue.nn.memm`).

- :func:`threshold_cross_entropy`: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293).
- :func:`am_softmax_loss` (and :func:`softmax_loss`, its ablation): 基于GRU和AM-Softmax的句子相似度模型
  (https://kexue.fm/archives/5743).
- :func:`multilabel_categorical_crossentropy` (ZLPR) and its sparse-label form: 将“Softmax+交叉熵”推广到
  多标签分类问题 (https://kexue.fm/archives/7359).
- :func:`negative_sampling_loss` and its fused sparse forms :func:`skipgram_negative_sampling`,
  :func:`cbow_negative_sampling`: “噪声对比估计”杂谈
  (https://kexue.fm/archives/5617); :func:`simpler_glove_loss` and :func:`glove_weight`: 更别致的词向量模型(四)
  (https://kexue.fm/archives/4675).
- :func:`powered_sigmoid_bce`: the sharpened pointers of 用bert4keras做三元组抽取 (https://kexue.fm/archives/7161).

The word-vector objectives live in :mod:`kexue.losses.word_vectors`, the GAN / VAE losses of 用变分推断统一理解生成模型
(https://kexue.fm/archives/5716) in :mod:`kexue.losses.gan`; both are re-exported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.losses.word_vectors import (
    cbow_negative_sampling,
    glove_weight,
    negative_sampling_loss,
    simpler_glove_loss,
    skipgram_negative_sampling,
)

REDUCTIONS = ("none", "sum", "mean", "token_mean")


def reduce_loss(values: Tensor, reduction: str, mask: Tensor | None = None) -> Tensor:
    """Reduce per-sample values ``(B, ...)``: the one reduction of every loss here and of the CRF/MEMM.

    Args:
        values: per-sample losses (or log-likelihoods) ``(B, ...)``.
        reduction: ``"none"`` (``values`` as they are), ``"sum"``, ``"mean"`` (over all entries), or, with a
            ``mask``, ``"token_mean"``: the sum divided by the number of true entries of ``mask``, the
            per-token average of sequence scores (as pytorch-crf; 简明条件随机场CRF介绍,
            https://kexue.fm/archives/5542).
        mask: ``(B, T)`` bool of the real steps of each sequence, needed only by ``"token_mean"``.

    Raises:
        ValueError: naming the reductions allowed (``"token_mean"`` only with a ``mask``).
    """
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    if reduction == "token_mean" and mask is not None:
        return values.sum() / mask.sum()
    allowed = REDUCTIONS if mask is not None else REDUCTIONS[:3]
    raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")


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
    return reduce_loss(-log_p_true * keep, reduction)  # (B,) before reduction


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


__all__ = ["reduce_loss", "threshold_cross_entropy", "ThresholdCrossEntropy", "classification_loss"]


# --- AM-Softmax (基于GRU和AM-Softmax的句子相似度模型, https://kexue.fm/archives/5743) ---


def am_softmax_loss(
    x: Tensor, weight: Tensor, target: Tensor, scale: float = 30.0, margin: float = 0.35, reduction: str = "mean"
) -> Tensor:
    """Additive-margin softmax: cross-entropy over ``s * (cos θ_j - m * [j = y])`` (kexue.fm/archives/5743).

    Both the vectors and the class weights are L2-normalised, so the logits are cosines: the target
    class must beat every other one by the margin ``m`` in cosine before the loss relaxes, which
    pulls the sentences of a class tightly around its weight vector. The scale ``s`` makes the
    softmax sharp enough to train (cosines live in ``[-1, 1]``). The post uses ``s = 30, m = 0.35``.

    Args:
        x: ``(B, D)`` vectors (normalised here; any norm).
        weight: ``(C, D)`` class vectors (normalised here: the post's ``unit_norm`` constraint).
        target: ``(B,)`` class indices.
        scale: ``s > 0``.
        margin: ``m ≥ 0``; ``m = 0`` is the plain cosine ("normalised") softmax.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).
    """
    if scale <= 0 or margin < 0:
        raise ValueError(f"AM-Softmax needs scale > 0 and margin >= 0, got scale={scale}, margin={margin}")
    cos = F.normalize(x, dim=-1) @ F.normalize(weight, dim=-1).T  # (B, C)
    logits = scale * (cos - margin * F.one_hot(target, cos.shape[-1]).to(cos.dtype))  # (B, C)
    return F.cross_entropy(logits, target, reduction=reduction)


def softmax_loss(x: Tensor, weight: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Plain softmax over ``x Wᵀ`` (free weights, no margin): the ablation of kexue.fm/archives/5743.

    ``x``: ``(B, D)``, ``weight``: ``(C, D)``, ``target``: ``(B,)``.
    """
    return F.cross_entropy(x @ weight.T, target, reduction=reduction)  # logits (B, C)


class AMSoftmaxLoss(nn.Module):
    """:func:`am_softmax_loss` with its ``(C, D)`` class weights as a parameter; ``forward(x (B, D), target (B,))``.

    Args:
        in_features: ``D``.
        num_classes: ``C``.
        scale: ``s``.
        margin: ``m``.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        if scale <= 0 or margin < 0:
            raise ValueError(f"AM-Softmax needs scale > 0 and margin >= 0, got scale={scale}, margin={margin}")
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) / in_features**0.5)
        self.scale, self.margin = scale, margin

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return am_softmax_loss(x, self.weight, target, self.scale, self.margin)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, " \
               f"scale={self.scale}, margin={self.margin}"


class SoftmaxLoss(nn.Module):
    """:func:`softmax_loss` with its ``(C, D)`` weights; ``forward(x (B, D), target (B,))``."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) / in_features**0.5)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return softmax_loss(x, self.weight, target)


__all__ += ["am_softmax_loss", "softmax_loss", "AMSoftmaxLoss", "SoftmaxLoss"]


# --- ZLPR: 将“Softmax+交叉熵”推广到多标签分类问题 (https://kexue.fm/archives/7359) ---


def multilabel_categorical_crossentropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """ZLPR, "softmax + cross-entropy" for multi-label classification (kexue.fm/archives/7359).

    ``log(1 + Σ_{i∈neg} e^{s_i}) + log(1 + Σ_{j∈pos} e^{-s_j})`` per sample, on raw scores: every
    positive score is pushed above 0 and every negative one below 0, so the decision rule is
    ``s > 0`` with no threshold to tune, and the loss sees the labels of a sample jointly (like
    softmax) instead of as independent binary problems, which the post argues copes with many
    negatives per positive without class weights.

    Both terms are a ``logsumexp`` over the scores of their set with an extra 0 (the "1 +"), the
    other set masked with ``-inf``: exact for scores of any size (±1e4 included) and finite when a
    set is empty, with no ``1e12`` constants that would overflow in half precision.

    Args:
        logits: ``(..., C)`` scores ``s``.
        target: ``(..., C)`` multi-hot labels; any non-zero entry counts as positive.
        reduction: ``"mean"`` (over all samples), ``"sum"`` or ``"none"`` (``(...)``).

    Returns:
        Scalar loss, or the per-sample losses ``(...)`` with ``reduction="none"``.
    """
    if target.shape != logits.shape:
        raise ValueError(f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    positive = target != 0  # (..., C)
    # F.pad prepends the 0 of "1 + Σ": (..., C) -> (..., 1 + C).
    neg = F.pad(logits.masked_fill(positive, float("-inf")), (1, 0)).logsumexp(-1)  # (...)
    pos = F.pad((-logits).masked_fill(~positive, float("-inf")), (1, 0)).logsumexp(-1)  # (...)
    return reduce_loss(neg + pos, reduction)


def sparse_multilabel_categorical_crossentropy(logits: Tensor, positives: Tensor, reduction: str = "mean") -> Tensor:
    """:func:`multilabel_categorical_crossentropy` with the labels given as indices (kexue.fm/archives/7359).

    For many classes and few positives per sample (the post's follow-ups use it for span
    extraction with ``C = L²``): ``positives`` lists the positive class ids of each sample.
    The post's sparse form gets ``Σ_neg`` as ``Σ_all - Σ_pos``, which cancels catastrophically once
    a positive score dominates (``s_pos = 1e4`` leaves ``log(0)``); here the ids are scattered into
    a boolean mask instead (one byte per class, the logits already hold four), so the result is
    the dense loss exactly.

    Args:
        logits: ``(..., C)`` scores.
        positives: ``(..., K)`` integer class ids in ``[0, C)``; negative ids are padding (rows with
            fewer than ``K`` positives). Repeated ids count once.
        reduction: as in :func:`multilabel_categorical_crossentropy`.
    """
    C = logits.shape[-1]
    if positives.shape[:-1] != logits.shape[:-1]:
        raise ValueError(
            f"positives must be (..., K) with ... = {tuple(logits.shape[:-1])}, got {tuple(positives.shape)}"
        )
    if positives.numel() and int(positives.max()) >= C:
        raise ValueError(f"class id {int(positives.max())} out of range for {C} classes")
    spare = positives.long().masked_fill(positives < 0, C)  # (..., K); padding goes to a spare column C
    mask = spare.new_zeros((*logits.shape[:-1], C + 1)).scatter_(-1, spare, 1)[..., :C]  # (..., C)
    return multilabel_categorical_crossentropy(logits, mask, reduction)


class MultilabelCategoricalCrossEntropy(nn.Module):
    """Module form of :func:`multilabel_categorical_crossentropy` (ZLPR); ``forward(logits (..., C),
    target (..., C) multi-hot)``, or ``(..., K)`` class ids with ``sparse=True``."""

    def __init__(self, sparse: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.sparse, self.reduction = sparse, reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        fn = sparse_multilabel_categorical_crossentropy if self.sparse else multilabel_categorical_crossentropy
        return fn(logits, target, self.reduction)

    def extra_repr(self) -> str:
        return f"sparse={self.sparse}, reduction={self.reduction!r}"


__all__ += [
    "multilabel_categorical_crossentropy",
    "sparse_multilabel_categorical_crossentropy",
    "MultilabelCategoricalCrossEntropy",
]


# --- Sharpened pointers: 用bert4keras做三元组抽取 (https://kexue.fm/archives/7161) ---


def powered_sigmoid_bce(logits: Tensor, target: Tensor, power: float = 1.0) -> Tensor:
    """Element-wise binary cross-entropy of the probabilities ``p = sigmoid(logits) ** power`` against ``target``
    (same shape, 0/1 or soft), computed in log space: ``log p = power * logsigmoid(z)``,
    ``log(1 - p) = log(-expm1(log p))``, each floored at -100 as ``F.binary_cross_entropy`` does.

    The post's triple extractor raises its subject pointers to the power 2 and its object pointers to the power 4
    before the BCE and the 0.6 / 0.5 thresholds: ``p ** n`` is small unless the network is sure, which sharpens
    a pointer network whose positives are rare. ``power=1`` is ``F.binary_cross_entropy_with_logits``.
    Shapes: any, ``logits`` and ``target`` alike; returns that shape (reduce it yourself).
    """
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    log_p = power * F.logsigmoid(logits)
    log_q = torch.log(-torch.expm1(log_p.clamp(max=-1e-7)))  # log(1 - p); p < 1 strictly
    return -(target * log_p.clamp(min=-100.0) + (1 - target) * log_q.clamp(min=-100.0))


__all__ += ["powered_sigmoid_bce", "negative_sampling_loss", "skipgram_negative_sampling", "cbow_negative_sampling",
            "simpler_glove_loss", "glove_weight"]

# GANs as variational inference and the VAE baseline (kexue.fm/archives/5716): kexue.losses.gan.
from kexue.losses.gan import (  # noqa: E402, I001 (after this module's own losses; explicit re-exports)
    bernoulli_negative_elbo as bernoulli_negative_elbo,
    check_gan_options as check_gan_options,
    discriminator_loss as discriminator_loss,
    gaussian_kl as gaussian_kl,
    generator_loss as generator_loss,
    generator_regularizer as generator_regularizer,
)

__all__ += ["bernoulli_negative_elbo", "check_gan_options", "discriminator_loss", "gaussian_kl", "generator_loss",
            "generator_regularizer"]
