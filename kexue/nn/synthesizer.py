"""Synthesizer attention: the scores are synthesised from each position alone (dense) or are free tables (random)
instead of the query-key products ``QKᵀ/√d``; the values are still a projection of the input.

Post: Google新作Synthesizer：我们还不够了解自注意力 (https://kexue.fm/archives/7430), on Tay et al., Synthesizer:
Rethinking Self-Attention in Transformer Models (arXiv:2005.00743). With ``L = max_length`` and ``T <= L``
positions, per head:

- dense: ``B_i = W2 relu(W1 x_i + b1) + b2`` maps position ``i`` alone to a row of ``L`` scores, of which the first
  ``T`` are used; position ``j`` never enters row ``i`` except through the value ``v_j``.
- random: ``R`` ``(L, L)`` fixed or trained, the same for every input: ``softmax(R[:T, :T]) V``.
- factorized dense: two such maps to ``a`` and ``b = L / a`` scores whose outer product gives the ``L`` scores.
- factorized random: ``R = R1 R2ᵀ`` with ``R1, R2`` ``(L, k)``.
- mixtures: ``softmax(Σ_c α_c S_c) V`` with trainable ``α`` summing to 1, e.g. dense + the usual ``QKᵀ/√d``.

Masks and biases follow :mod:`kexue.nn.attention`: a boolean mask is ``True`` where a query may attend to a key and
broadcasts to ``(B, H, T, S)``, a float bias is added to the scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.nn.attention import KVCache, _check_broadcast, attention_mask

SYNTHESISED = ("dense", "random", "factorized_dense", "factorized_random")
COMPONENTS = (*SYNTHESISED, "dot")


def synthesized_attention(
    scores: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
) -> Tensor:
    """``softmax(scores + bias, masked) v`` per head, from precomputed (synthesised) ``scores``.

    Args:
        scores: ``(B, H, T, S)`` or ``(1, H, T, S)`` (random synthesisers: the same scores for every example).
        v: ``(B, H, S, Dv)`` values.
        mask: boolean, ``True`` = may attend, broadcastable to ``(B, H, T, S)``; a query row it leaves no key attends
            to every key (finite junk instead of NaN, as :func:`kexue.nn.attention.attention_mask`).
        bias: float added to the scores, broadcastable to ``(B, H, T, S)``.
        causal: query ``i`` sees keys ``j <= i + S - T``.
        dropout: dropout on the attention weights (pass 0 at evaluation).

    Returns:
        ``(B, H, T, Dv)``.
    """
    if (scores.dim() != 4 or v.dim() != 4 or scores.shape[0] not in (1, v.shape[0]) or scores.shape[1] != v.shape[1]
            or scores.shape[3] != v.shape[2]):
        raise ValueError(f"scores {tuple(scores.shape)}, v {tuple(v.shape)}: need scores (B or 1, H, T, S) and "
                         "v (B, H, S, Dv)")
    B, (_, H, T, S) = v.shape[0], scores.shape
    _check_broadcast("mask", mask, (B, H, T, S))
    _check_broadcast("bias", bias, (B, H, T, S))
    if causal:
        lower = torch.ones(T, S, dtype=torch.bool, device=scores.device).tril(S - T)  # (T, S)
        mask = lower if mask is None else mask & lower
    allowed = attention_mask(mask, bias, scores.dtype)  # bool (.., T, S), or float with -inf where masked
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf")) if allowed.dtype == torch.bool else scores + allowed
    weights = scores.softmax(dim=-1)  # (B or 1, H, T, S)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights @ v  # (B, H, T, Dv)


class HeadwiseDense(nn.Module):
    """The dense synthesiser ``F(x_i) = W2 relu(W1 x_i + b1) + b2`` for ``H`` heads: ``(B, T, D)`` -> ``(B, H, T, N)``.

    ``W1`` is one ``D x D`` map whose hidden units are split into ``H`` slices of ``D / H``; head ``h`` maps its own
    slice by ``W2_h`` ``(D / H, N)``. Head ``h``'s scores are then ``relu(q_h) K_hᵀ`` with a learned key table
    ``K_h = W2_hᵀ`` ``(N, D / H)`` that no input changes: a query-only attention.
    """

    def __init__(self, dim: int, num_heads: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.hidden = nn.Linear(dim, dim, bias=bias)
        bound = 1 / math.sqrt(self.head_dim)  # nn.Linear's default for a fan-in of D / H
        self.weight = nn.Parameter(torch.empty(num_heads, self.head_dim, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_heads, 1, out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        h = F.relu(self.hidden(x)).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        y = h @ self.weight  # (B, H, T, N)
        return y if self.bias is None else y + self.bias  # (B, H, T, N)


class SynthesizerAttention(nn.Module):
    """Multi-head self-attention with synthesised scores: ``(B, T, D)`` -> ``(B, T, D)``, called like
    :class:`kexue.nn.attention.MultiHeadAttention` (kexue.fm/archives/7430).

    Values ``v = x Wvᵀ`` ``(B, H, T, D/H)`` per head, ``softmax(scores) v`` with the heads concatenated and projected
    back by ``out``. ``kind`` chooses the scores (``L = max_length``, ``T <= L``, ``k = rank``):

    - ``"dense"``: :class:`HeadwiseDense` maps each ``x_i`` to ``L`` scores per head, the first ``T`` kept.
    - ``"random"``: a table ``random`` ``(H, L, L)``, its top-left ``(T, T)`` block, the same for every input.
    - ``"factorized_dense"``: :class:`HeadwiseDense` to ``a = k`` and ``b = L / k`` scores per head; score ``j``
      is ``A[j mod a] · B[j div a]`` (the flattened outer product ``B ⊗ A``). The paper tiles both vectors
      (``A`` ``b`` times, ``B`` ``a`` times), which is the outer product (permuted) only when ``gcd(a, b) = 1`` and
      otherwise repeats a few products; the outer product is what it means to build.
    - ``"factorized_random"``: ``random_left @ random_rightᵀ``, each ``(H, L, k)``: ``(H, L, L)`` of rank ``k``.
    - ``"dot"`` (only in a mixture): the usual ``q kᵀ / √(D/H)`` with ``q, k`` from the fused ``qk`` map.
    - a mixture, components joined by ``+`` (``"dense+dot"``, ``"random+dot"``, ``"dense+random"``, ...): the paper's
      ``softmax(Σ_c α_c S_c) V`` with ``α = softmax(mix)`` over the components in the order written (``mix``
      ``(C,)`` trainable, zero at start: equal weights). The weights mix the score matrices before the softmax;
      ``mix = (-inf, 0)`` in ``"dense+dot"`` is plain dot-product attention.

    Args:
        dim: model width ``D``.
        num_heads: heads ``H``, dividing ``D``.
        max_length: ``L``, the most positions an input may have (the synthesised score rows have ``L`` entries).
        kind: the scores, as above.
        rank: ``k``: ``a`` of the factorized dense kind (dividing ``L``), the rank of the factorized random one.
        trainable: the random tables are parameters (trained); else buffers (fixed at their random start, still in
            the ``state_dict`` so a checkpoint reproduces them). No effect on the other kinds.
        bias: biases on the projections and the dense synthesisers.
        dropout: dropout on the attention weights.
        layer: this layer's index in a stack (the signature of :class:`MultiHeadAttention`; no cache here).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        max_length: int,
        kind: str = "dense",
        rank: int = 8,
        trainable: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        layer: int = 0,
    ) -> None:
        super().__init__()
        components = tuple(kind.split("+"))
        if (any(c not in COMPONENTS for c in components) or len(set(components)) < len(components)
                or not set(components) & set(SYNTHESISED)):
            raise ValueError(f"kind={kind!r}: need one of {SYNTHESISED} or several distinct ones of {COMPONENTS} "
                             "joined by '+' (a synthesised one among them)")
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide the width dim={dim}")
        if max_length < 1 or rank < 1:
            raise ValueError(f"max_length={max_length} and rank={rank} must be positive")
        if "factorized_dense" in components and max_length % rank:
            raise ValueError(f"rank={rank} does not divide max_length={max_length} (factorized_dense: a = rank, "
                             "b = max_length / rank)")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.max_length, self.kind, self.components, self.rank = max_length, kind, components, rank
        self.trainable, self.dropout, self.layer = trainable, dropout, layer
        H, L = num_heads, max_length
        if "dense" in components:
            self.dense = HeadwiseDense(dim, H, L, bias=bias)
        if "factorized_dense" in components:
            self.factorized_dense = HeadwiseDense(dim, H, rank + L // rank, bias=bias)
        if "random" in components:
            self._table("random", torch.randn(H, L, L))
        if "factorized_random" in components:
            std = rank ** -0.25  # entries of R1 R2ᵀ: variance rank · std⁴ = 1, as "random"
            self._table("random_left", torch.randn(H, L, rank) * std)
            self._table("random_right", torch.randn(H, L, rank) * std)
        if "dot" in components:
            self.qk = nn.Linear(dim, 2 * dim, bias=bias)  # rows ordered q, k
        if len(components) > 1:
            self.mix = nn.Parameter(torch.zeros(len(components)))
        self.v = nn.Linear(dim, dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def _table(self, name: str, value: Tensor) -> None:
        if self.trainable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)  # persistent: saved and loaded with the state_dict

    def mixture_weights(self) -> Tensor:
        """``α`` ``(C,)``, one per component of ``kind`` in order, summing to 1 (``(1.,)`` when not a mixture)."""
        return self.mix.softmax(0) if len(self.components) > 1 else torch.ones(1, device=self.v.weight.device)

    def scores(self, x: Tensor) -> Tensor:
        """The pre-softmax scores ``(B, H, T, T)`` for ``x`` ``(B, T, D)`` (``(1, H, T, T)`` when input-free)."""
        B, T, _ = x.shape
        H, Dh, a = self.num_heads, self.head_dim, self.rank
        parts = []
        for name in self.components:
            if name == "dense":
                s = self.dense(x)[..., :T]  # (B, H, T, L) -> (B, H, T, T)
            elif name == "factorized_dense":
                fa, fb = self.factorized_dense(x).split([a, self.max_length // a], dim=-1)  # (B, H, T, a), (.., b)
                s = (fb.unsqueeze(-1) * fa.unsqueeze(-2)).flatten(-2)[..., :T]  # (B, H, T, b, a) -> (B, H, T, T)
            elif name == "random":
                s = self.random[:, :T, :T].unsqueeze(0)  # (1, H, T, T)
            elif name == "factorized_random":
                s = (self.random_left[:, :T] @ self.random_right[:, :T].transpose(1, 2)).unsqueeze(0)  # (1, H, T, T)
            else:
                q, k = self.qk(x).view(B, T, 2, H, Dh).permute(2, 0, 3, 1, 4)  # 2 x (B, H, T, Dh)
                s = q @ k.transpose(-2, -1) / math.sqrt(Dh)  # (B, H, T, T)
            parts.append(s)
        if len(parts) == 1:
            return parts[0]
        return sum(alpha * s for alpha, s in zip(self.mixture_weights(), parts))  # (B or 1, H, T, T)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``x`` ``(B, T, D)``, ``T <= max_length``, to itself; returns ``(B, T, D)``.

        ``mask``/``bias``/``causal`` as :func:`synthesized_attention` (``S = T``). ``context`` and ``cache`` raise:
        the scores of query ``i`` come from ``x_i`` (or from nothing), not from keys of another sequence, and
        dense rows are cut to the current length, so there is no incremental decoding. ``positions`` is ignored:
        the synthesised scores are already positional.
        """
        if context is not None:
            raise ValueError(f"SynthesizerAttention is self-attention only: got a context of shape "
                             f"{tuple(context.shape)} for x of shape {tuple(x.shape)}")
        if cache is not None:
            raise ValueError("SynthesizerAttention cannot decode incrementally: its score rows are synthesised for "
                             "the whole sequence at once (pass cache=None and the full sequence)")
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x of shape {tuple(x.shape)}: need (B, T, dim) with dim={self.dim}")
        B, T, D = x.shape
        if T > self.max_length:
            raise ValueError(f"x of shape {tuple(x.shape)} has T={T} positions, more than max_length="
                             f"{self.max_length}: scores are synthesised for at most max_length positions")
        v = self.v(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        y = synthesized_attention(self.scores(x), v, mask, bias, causal, self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))  # (B, H, T, Dh) -> (B, T, D)

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, heads={self.num_heads}, max_length={self.max_length}, rank={self.rank}, "
                f"trainable={self.trainable}")


__all__ = ["HeadwiseDense", "SynthesizerAttention", "synthesized_attention"]
