"""Generated-image quality: an Inception-like score and the Fréchet distance, each a function and a Metric.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716), whose GAN and VAE samples are
scored here with a classifier of the data (the digit judge, :mod:`kexue.models.judge`) instead of ImageNet's
Inception network. The functions hold the math; the :class:`torchmetrics.Metric` classes keep only sums
(``dist_reduce_fx="sum"``), so under DDP each process updates with its own share of the images and the synced value
is the one-process value on all of them.

- Inception score ``exp E_x KL(p(y|x) || p(y))`` with ``p(y)`` the mean prediction. It splits into sums:
  ``E_x KL = E_x Σ_c p log p - Σ_c p̄_c log p̄_c`` (``p̄`` the mean of the rows), hence the states ``Σ_x Σ_c p log p``,
  ``Σ_x p`` and the count.
- Fréchet distance between Gaussians fitted to two feature sets: ``||mu_a - mu_b||² + tr(S_a + S_b - 2 (S_a S_b)^½)``
  with unbiased covariances; its states are each set's count, feature sum and sum of outer products (float64).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def _check_probs(probs: Tensor) -> None:
    if probs.ndim != 2 or probs.shape[0] < 1:
        raise ValueError(f"probs must be (N, C) with N >= 1, got shape {tuple(probs.shape)}")


def _inception_score_from_sums(neg_entropy_sum: Tensor, prob_sum: Tensor, count: Tensor) -> Tensor:
    """``exp(Σ_x Σ_c p log p / N - Σ_c p̄ log p̄)`` from the sums of :class:`InceptionScore`: a 0-dim tensor."""
    marginal = prob_sum / count  # (C,)
    return (neg_entropy_sum / count - torch.xlogy(marginal, marginal).sum()).exp()


def inception_score(probs: Tensor) -> Tensor:
    """Inception-like score ``exp(E_x[KL(p(y|x) || p(y))])`` of class probabilities ``probs (N, C)`` (rows sum to 1),
    ``p(y)`` the mean row, ``0 log 0 = 0``; a 0-dim float64 tensor. 1 when every row is the same (no spread or no
    confidence), ``C`` when every row is one-hot and the classes are used equally (kexue.fm/archives/5716)."""
    _check_probs(probs)
    p = probs.double()
    return _inception_score_from_sums(torch.xlogy(p, p).sum(), p.sum(0), torch.tensor(len(p), dtype=p.dtype))


def frechet_distance_from_moments(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> Tensor:
    """``||mean_a - mean_b||² + tr(cov_a + cov_b - 2 (cov_a cov_b)^½)`` of means ``(F,)`` and covariances
    ``(F, F)``; a 0-dim float64 tensor.

    ``tr((S_a S_b)^½)`` is the sum of the square roots of the eigenvalues of the symmetric PSD ``S_a^½ S_b S_a^½``
    (the spectrum of ``S_a S_b``): two ``eigh`` calls in float64, no non-symmetric matrix square root.
    """
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = (vectors * values.clamp(min=0).sqrt()) @ vectors.T  # (F, F): S_a^½
    middle = root_a @ cov_b @ root_a  # (F, F), symmetric PSD
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root


def _check_features(features_a: Tensor, features_b: Tensor) -> None:
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features must be (N, F) and (M, F), got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("each feature set needs at least 2 rows for a covariance")


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Fréchet distance (FID's formula) between Gaussians fitted to feature sets ``(N, F)`` and ``(M, F)``, unbiased
    covariances; a 0-dim float64 tensor (kexue.fm/archives/5716, on the digit judge's features)."""
    _check_features(features_a, features_b)
    a, b = features_a.double(), features_b.double()
    return frechet_distance_from_moments(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


class InceptionScore(Metric):
    """:func:`inception_score` of every ``probs (B, C)`` given to :meth:`update`, from sum states (DDP: each process
    its own share of the samples).

    Args:
        num_classes: ``C``, the classifier's classes.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.add_state("neg_entropy_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("prob_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Tensor) -> None:
        """Add class probabilities ``probs (B, C)``."""
        _check_probs(probs)
        p = probs.double()
        self.neg_entropy_sum += torch.xlogy(p, p).sum()
        self.prob_sum += p.sum(0)
        self.count += len(p)

    def compute(self) -> Tensor:
        if self.count < 1:
            raise ValueError("InceptionScore: no probabilities were given to update()")
        return _inception_score_from_sums(self.neg_entropy_sum, self.prob_sum, self.count)


class FrechetDistance(Metric):
    """:func:`frechet_distance` between the ``real=True`` and the ``real=False`` features given to :meth:`update`,
    from each set's count, feature sum and sum of outer products in float64 (DDP: each process its own share).

    Args:
        num_features: ``F``, the feature size.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_features: int) -> None:
        super().__init__()
        for side in ("real", "fake"):
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(num_features, num_features, dtype=torch.float64),
                           dist_reduce_fx="sum")

    def update(self, features: Tensor, real: bool) -> None:
        """Add features ``(B, F)`` of real (reference) or of generated images."""
        side = "real" if real else "fake"
        f = features.double()  # (B, F)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + len(f))
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)  # (F, F)

    def _moments(self, side: str) -> tuple[Tensor, Tensor]:
        n, total, outer = (getattr(self, f"{side}_{name}") for name in ("count", "sum", "outer"))
        if n < 2:
            raise ValueError(f"FrechetDistance: {int(n)} {side} feature rows given, a covariance needs at least 2")
        mean = total / n  # (F,)
        return mean, (outer - n * torch.outer(mean, mean)) / (n - 1)  # (F,), (F, F): unbiased

    def compute(self) -> Tensor:
        return frechet_distance_from_moments(*self._moments("real"), *self._moments("fake"))


__all__ = ["FrechetDistance", "InceptionScore", "frechet_distance", "frechet_distance_from_moments",
           "inception_score"]
