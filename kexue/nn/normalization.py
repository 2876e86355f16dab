"""Conditional Layer Normalization, from 基于Conditional Layer Normalization的条件文本生成
(https://kexue.fm/archives/7124): a LayerNorm whose gain γ and shift β are moved by linear maps of a condition
vector ``c`` (a class, a subject, an image feature), so that one network generates under that condition.

``y = (γ + W_γ c) ⊙ (x − μ) / σ + (β + W_β c)``. The post initialises ``W_γ`` and ``W_β`` at zero so that
training starts from the unconditioned (e.g. pretrained) model; so does this block (tested: exactly LayerNorm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conditional_layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """``gamma ⊙ normalise(x) + beta`` over the last dim: ``x`` ``(..., D)``, ``gamma``/``beta`` broadcastable."""
    return F.layer_norm(x, x.shape[-1:], eps=eps) * gamma + beta


class ConditionalLayerNorm(nn.Module):
    """LayerNorm over ``D`` with γ, β shifted by projections of a condition: ``x`` ``(B, T, D)`` or ``(B, D)``,
    ``condition`` ``(B, C)`` or ``(B, T, C)`` -> like ``x``.

    Args:
        dim: ``D``.
        condition_dim: ``C``.
        hidden_dim: project the condition to this size first (the post's optional ``Dense`` that keeps the number
            of new parameters small when ``C`` is large); ``None``: project directly.
        eps: the variance floor.

    Without a condition (``condition=None``) it is plain LayerNorm, so a stack can share one code path.
    """

    def __init__(self, dim: int, condition_dim: int, hidden_dim: int | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps, self.condition_dim = eps, condition_dim
        self.hidden = nn.Linear(condition_dim, hidden_dim, bias=False) if hidden_dim else nn.Identity()
        self.to_gamma = nn.Linear(hidden_dim or condition_dim, dim, bias=False)
        self.to_beta = nn.Linear(hidden_dim or condition_dim, dim, bias=False)
        nn.init.zeros_(self.to_gamma.weight)
        nn.init.zeros_(self.to_beta.weight)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        if condition is None:
            return conditional_layer_norm(x, self.weight, self.bias, self.eps)
        if condition.shape[-1] != self.condition_dim or condition.shape[0] != x.shape[0]:
            raise ValueError(f"condition of shape {tuple(condition.shape)} does not fit x of shape "
                             f"{tuple(x.shape)}: need (B, condition_dim={self.condition_dim}) or (B, T, ...)")
        c = self.hidden(condition)  # (B, [T,] C')
        if c.dim() == 2 and x.dim() == 3:
            c = c[:, None]  # (B, 1, C')
        return conditional_layer_norm(x, self.weight + self.to_gamma(c), self.bias + self.to_beta(c), self.eps)


__all__ = ["ConditionalLayerNorm", "conditional_layer_norm"]
