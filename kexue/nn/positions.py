"""Position information for attention, which by itself is blind to order.

- :func:`sinusoidal_positions` / :class:`SinusoidalPositions`: the fixed encoding of 《Attention is All You Need》浅读
  (https://kexue.fm/archives/4765), ``PE(p, 2i) = sin(p / 10000^{2i/d})``, ``PE(p, 2i+1) = cos(...)``, added to the
  token vectors.
- :class:`LearnedPositions`: one trained vector per position (BERT, GPT-2), added likewise.
- :class:`RotaryEmbedding`: rotary position embedding (RoPE, Su Jianlin's, what Llama and most current LMs use):
  queries and keys are rotated pairwise by angles ``p · θ_i``, so that their dot product depends on ``p_q - p_k``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0, offset: int = 0) -> Tensor:
    """``(length, dim)`` encodings of positions ``offset .. offset + length - 1``: sine in the even columns, cosine in
    the odd ones, frequencies ``base^{-2i/dim}``. ``dim`` must be even."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {dim}")
    position = torch.arange(offset, offset + length, dtype=torch.float64)[:, None]  # (T, 1)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    angle = position * freq  # (T, dim/2)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1).float()  # (T, dim): sin, cos interleaved


class SinusoidalPositions(nn.Module):
    """Adds :func:`sinusoidal_positions` to ``x`` ``(B, T, D)``; no parameters, any length."""

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        sinusoidal_positions(1, dim)  # validates dim
        self.dim, self.base = dim, base

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x`` ``(B, T, D)`` plus the encodings of ``positions`` ``(T,)`` or ``(B, T)``."""
        table = sinusoidal_positions(int(positions.max()) + 1, self.dim, self.base).to(x)  # (P, D)
        return x + table[positions]  # (B, T, D)


class LearnedPositions(nn.Module):
    """Adds a trained vector per position to ``x`` ``(B, T, D)`` (BERT's and GPT-2's ``position_embeddings``).

    Args:
        max_length: positions it has vectors for; longer inputs are a ``ValueError``.
        dim: width ``D``.
    """

    def __init__(self, max_length: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_length, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x`` ``(B, T, D)`` plus the vectors of ``positions`` ``(T,)`` or ``(B, T)``."""
        if int(positions.max()) >= self.embedding.num_embeddings:
            raise ValueError(f"position {int(positions.max())} but learned positions stop at max_length="
                             f"{self.embedding.num_embeddings}")
        return x + self.embedding(positions)  # (B, T, D)


class RotaryEmbedding(nn.Module):
    """Rotates queries or keys ``(B, H, T, Dh)`` by their positions: pair ``i`` of a vector at position ``p`` turns by
    ``p · base^{-2i/Dh}``.

    Args:
        head_dim: ``Dh`` (even).
        base: the frequency base (10000 in RoFormer and Llama 2; SmolLM2 uses 100000 — read it from the checkpoint).
        interleaved: pairs are adjacent columns ``(2i, 2i+1)`` (RoFormer, Meta's Llama, GGUF files); ``False``:
            column ``i`` pairs with ``i + Dh/2`` (the Hugging Face layout, whose checkpoints permute q/k rows to match).
    """

    def __init__(self, head_dim: int, base: float = 10000.0, interleaved: bool = False) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head_dim, got {head_dim}")
        self.interleaved = interleaved
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (Dh/2,)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x`` ``(B, H, T, Dh)``, ``positions`` ``(T,)`` or ``(B, T)`` -> ``x`` rotated, same shape."""
        angle = positions.to(torch.float32)[..., None] * self.inv_freq  # (T, Dh/2) or (B, T, Dh/2)
        if angle.dim() == 3:
            angle = angle[:, None]  # (B, 1, T, Dh/2)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        if self.interleaved:
            x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, Dh/2) each
            return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)  # (B, H, T, Dh)
        x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, Dh/2) each
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, T, Dh)


__all__ = ["LearnedPositions", "RotaryEmbedding", "SinusoidalPositions", "sinusoidal_positions"]
