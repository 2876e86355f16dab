"""Riemannian SGD on the unit sphere: each row of a parameter is a point of ``S^(D-1)``.

Post: JoSE:球面上的词向量和句向量 (https://kexue.fm/archives/7063), on Meng et al. 2019, "Spherical Text
Embedding" (NeurIPS). A step takes the Euclidean gradient ``g`` of a row ``x``, keeps its part in
the tangent space of the sphere at ``x``, moves along it and retracts onto the sphere by renormalising::

    g_t = (I - x x^T) g = g - (g . x) x                      (Riemannian gradient, tangent at x)
    x'  = R_x(-lr * s * g_t),   R_x(z) = (x + z) / ||x + z||  (retraction)

The paper scales the step by the cosine distance between ``x`` and the descent direction ``-g``:
``s = 1 + x^T g / ||g||`` (in ``[0, 2]``; 1 - cos(x, -g)). Its argument: the projection throws away the radial
part of ``g``, so when ``-g`` points almost straight *away* from ``x`` (the point has to travel far along the
sphere) ``g_t`` is short although the loss asks for a large move, and when ``-g`` points along ``x`` (nearly
there already) ``g_t`` is also short and the move should stay small; ``s`` tells the two apart, 2 in the first
case, 0 in the second. ``cosine_scaling=False`` gives plain Riemannian SGD (``s = 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from kexue.optim.optimizers import run_closure

EPS = 1e-12


def sphere_sgd_step(x: Tensor, grad: Tensor, lr: float, cosine_scaling: bool = True) -> Tensor:
    """One Riemannian SGD step on the unit sphere for each row of ``x`` (https://kexue.fm/archives/7063).

    ``x`` ``(N, D)`` points (normalised here first, so rows slightly off the sphere are snapped onto it), ``grad``
    ``(N, D)`` their Euclidean gradients, ``lr`` the step size; returns the ``(N, D)`` new points, unit rows.
    With ``cosine_scaling`` each row's step is multiplied by ``1 + x^T g / ||g||`` (Meng et al. 2019); a
    zero gradient leaves its row where it is.
    """
    if x.shape != grad.shape or x.dim() < 1:
        raise ValueError(f"x and grad must have the same (N, D) shape, got {tuple(x.shape)} and {tuple(grad.shape)}")
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)  # (N, D)
    radial = (grad * x).sum(-1, keepdim=True)  # (N, 1): g . x
    tangent = grad - radial * x  # (N, D): (I - x x^T) g
    step = lr * tangent
    if cosine_scaling:
        step = step * (1 + radial / grad.norm(dim=-1, keepdim=True).clamp_min(EPS))  # (N, D)
    moved = x - step  # (N, D)
    return moved / moved.norm(dim=-1, keepdim=True).clamp_min(EPS)


class RiemannianSGD(Optimizer):
    """Riemannian SGD on the unit sphere, row by row (:func:`sphere_sgd_step`; https://kexue.fm/archives/7063).

    Every parameter is read as rows of its last dimension, ``(..., D)``, each a point on ``S^(D-1)`` (``D >= 2``).
    Sparse gradients (``nn.Embedding(sparse=True)``) update only the rows they name, duplicates summed; dense
    gradients update every row whose gradient is non-zero (a zero gradient leaves a row in place). The model
    puts its rows on the sphere at initialisation; a row off it is normalised at its first update.

    Args:
        params: parameters or parameter groups.
        lr: step size (a group may set its own; an LR scheduler changes it as for any torch optimizer).
        cosine_scaling: scale each row's step by the cosine distance ``1 + x^T g / ||g||`` (the paper's rule);
            False: plain Riemannian SGD.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 0.04,
                 cosine_scaling: bool = True) -> None:
        if lr < 0:
            raise ValueError(f"RiemannianSGD lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr, "cosine_scaling": cosine_scaling})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() < 1 or p.shape[-1] < 2:
                    raise ValueError(f"RiemannianSGD needs rows of size >= 2 (points on a sphere), got a parameter "
                                     f"of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = run_closure(closure)
        for group in self.param_groups:
            lr, scaled = group["lr"], group["cosine_scaling"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                rows = p.view(-1, p.shape[-1])  # (N, D), shares p's storage
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()  # duplicate rows summed
                    if grad.sparse_dim() != 1 or p.dim() != 2:
                        raise ValueError("RiemannianSGD takes sparse gradients of (N, D) tables only")
                    index = grad.indices()[0]  # (n,)
                    rows.index_copy_(0, index, sphere_sgd_step(rows[index], grad.values().to(p.dtype), lr, scaled))
                else:
                    grad = p.grad.reshape(-1, p.shape[-1])  # (N, D)
                    moving = grad.abs().sum(-1) > 0  # (N,)
                    rows[moving] = sphere_sgd_step(rows[moving], grad[moving].to(p.dtype), lr, scaled)
        return loss


__all__ = ["RiemannianSGD", "sphere_sgd_step"]
