"""Multi-head attention on ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), with masks, additive biases,
grouped-query heads and a KV cache for incremental decoding.

Post: 《Attention is All You Need》浅读 (https://kexue.fm/archives/4765): ``Attention(Q, K, V) = softmax(QKᵀ/√d_k) V``,
``h`` heads of width ``d_k = d / h``, concatenated and projected back. Masks follow
从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933): :mod:`kexue.nn.masks` builds them, here
they are only applied.

Conventions: a boolean mask is ``True`` where a query may attend to a key and broadcasts to ``(B, H, T, S)``
(``T`` queries, ``S`` keys); a float ``bias`` is added to the scores and broadcasts the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_broadcast(name: str, tensor: Tensor | None, shape: tuple[int, ...]) -> None:
    """A ``ValueError`` naming both shapes when ``tensor`` does not broadcast to ``shape``."""
    if tensor is None:
        return
    if tensor.dim() > len(shape) or any(a not in (1, b) for a, b in zip(tensor.shape[::-1], shape[::-1])):
        raise ValueError(f"{name} of shape {tuple(tensor.shape)} does not broadcast to the attention scores "
                         f"(B, H, T, S) = {shape}")


def attention_mask(mask: Tensor | None, bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """One SDPA ``attn_mask`` from a boolean ``mask`` and an additive float ``bias`` (either may be ``None``).

    A query row that the mask leaves no key at all (a blank, all-padding text) is let attend to every key: its
    output is then finite junk that the caller ignores, where SDPA would return NaN that spreads through gradients.
    """
    if mask is not None:
        mask = mask | ~mask.any(-1, keepdim=True)  # (.., T, S)
    if bias is None:
        return mask
    bias = bias.to(dtype)
    return bias if mask is None else bias.masked_fill(~mask, float("-inf"))


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    scale: float | None = None,
) -> Tensor:
    """``softmax(q kᵀ · scale + bias, masked) v`` per head, through ``F.scaled_dot_product_attention``.

    Args:
        q: ``(B, H, T, Dh)`` queries.
        k: ``(B, Hkv, S, Dh)`` keys; ``H`` a multiple of ``Hkv`` (grouped-query attention: each key/value head
            serves ``H / Hkv`` query heads).
        v: ``(B, Hkv, S, Dv)`` values.
        mask: boolean, ``True`` = may attend, broadcastable to ``(B, H, T, S)``.
        bias: float added to the scores, broadcastable to ``(B, H, T, S)`` (relative positions, ALiBi, ...).
        causal: query ``i`` sees keys ``j <= i + S - T`` (the last ``T`` of ``S`` positions, as with a KV cache).
        dropout: dropout on the attention weights (pass 0 at evaluation).
        scale: score scale, default ``1 / sqrt(Dh)``.

    Returns:
        ``(B, H, T, Dv)``.
    """
    B, H, T, _ = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if H % Hkv or k.shape[0] != B or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: need q (B, H, T, Dh), "
                         "k (B, Hkv, S, Dh), v (B, Hkv, S, Dv) with H a multiple of Hkv")
    _check_broadcast("mask", mask, (B, H, T, S))
    _check_broadcast("bias", bias, (B, H, T, S))
    if causal and mask is None and bias is None and T == S:  # SDPA's own causal path (no mask tensor)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale,
                                              enable_gqa=Hkv != H)  # (B, H, T, Dv)
    if causal:
        lower = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)  # (T, S)
        mask = lower if mask is None else mask & lower
    attn_mask = attention_mask(mask, bias, q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale,
                                          enable_gqa=Hkv != H)  # (B, H, T, Dv)


class KVCache:
    """Keys and values of the positions decoded so far, one ``(k, v)`` pair per layer, each ``(B, Hkv, S, Dh)``.

    A stack (:class:`kexue.nn.Transformer`) makes one per generation with ``new_cache()`` and passes it to every
    call; each attention layer appends its new keys/values through :meth:`update`. Beam search reorders the batch
    rows with :meth:`reorder`.
    """

    def __init__(self, num_layers: int) -> None:
        self.layers: list[tuple[Tensor, Tensor] | None] = [None] * num_layers

    @property
    def length(self) -> int:
        """Positions cached so far (``S`` before the current call appends)."""
        first = self.layers[0]
        return 0 if first is None else first[0].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k, v`` ``(B, Hkv, T, Dh)`` to layer ``layer``'s cache; return the whole ``(B, Hkv, S+T, Dh)``."""
        past = self.layers[layer]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, Hkv, S+T, Dh)
        self.layers[layer] = (k, v)
        return k, v

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` ``(B',)`` (in that order) in every layer: beam search's parent pointers."""
        self.layers = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.layers]


class MultiHeadAttention(nn.Module):
    """Multi-head (or grouped-query) attention with input and output projections: ``(B, T, D)`` -> ``(B, T, D)``.

    Self-attention projects queries, keys and values with one fused ``qkv`` linear map (as
    ``nn.MultiheadAttention``'s ``in_proj_weight``, rows ordered q, k, v); cross-attention (``cross=True``) has a
    ``q`` map for the queries and a fused ``kv`` map for the context. With the same weights it equals
    ``torch.nn.MultiheadAttention(batch_first=True)`` (tested).

    Args:
        dim: model width ``D``.
        num_heads: query heads ``H``; ``D`` need not equal ``H * head_dim`` when ``head_dim`` is given.
        num_kv_heads: key/value heads ``Hkv`` (grouped-query attention, Llama-style); default ``H``.
        head_dim: ``Dh``, default ``D / H`` (then ``H`` must divide ``D``).
        bias: biases on the projections (BERT, GPT-2: yes; Llama: no).
        dropout: dropout on the attention weights.
        cross: attend to a ``context`` instead of the input itself.
        context_dim: width of the context (cross-attention), default ``D``.
        layer: this layer's index in a :class:`KVCache`.
        rotary: a :class:`kexue.nn.RotaryEmbedding` applied to queries and keys (shared by the layers).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        cross: bool = False,
        context_dim: int | None = None,
        layer: int = 0,
        rotary: nn.Module | None = None,
    ) -> None:
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if head_dim is None and (num_heads < 1 or dim % num_heads):
            raise ValueError(f"num_heads={num_heads} does not divide the width dim={dim}")
        if num_kv_heads < 1 or num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads={num_kv_heads} does not divide num_heads={num_heads}")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or dim // num_heads
        self.dropout, self.cross, self.layer = dropout, cross, layer
        q_dim, kv_dim = num_heads * self.head_dim, num_kv_heads * self.head_dim
        if cross:
            self.q = nn.Linear(dim, q_dim, bias=bias)
            self.kv = nn.Linear(context_dim or dim, 2 * kv_dim, bias=bias)
        else:
            self.qkv = nn.Linear(dim, q_dim + 2 * kv_dim, bias=bias)
        self.out = nn.Linear(q_dim, dim, bias=bias)
        self.rotary = [rotary] if rotary is not None else []  # a list: shared, not registered as this layer's child

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
        """Attend from ``x`` ``(B, T, D)`` to itself (or to ``context`` ``(B, S, Dc)`` when ``cross``).

        ``mask``/``bias``/``causal`` as :func:`scaled_dot_product_attention` (``S`` counts cached positions too).
        With a ``cache``, this call's keys and values are appended to it first (self-attention only; a
        cross-attention layer recomputes its context's keys). ``positions`` ``(T,)`` or ``(B, T)``: the rotary
        positions of ``x``, default ``cache.length + arange(T)``. Returns ``(B, T, D)``.
        """
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        if self.cross:
            if context is None:
                raise ValueError("a cross-attention layer needs a context (B, S, context_dim)")
            q = self.q(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
            k, v = self.kv(context).view(B, -1, 2, Hkv, Dh).permute(2, 0, 3, 1, 4)  # 2 x (B, Hkv, S, Dh)
        else:
            qkv = self.qkv(x)  # (B, T, (H + 2 Hkv) Dh)
            q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
            q = q.view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
            k = k.view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
            v = v.view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
            if self.rotary:
                if positions is None:
                    start = cache.length if cache is not None else 0
                    positions = torch.arange(start, start + T, device=x.device)  # (T,)
                q, k = self.rotary[0](q, positions), self.rotary[0](k, positions)
            if cache is not None:
                k, v = cache.update(self.layer, k, v)  # (B, Hkv, S, Dh), S = cached + T
        y = scaled_dot_product_attention(q, k, v, mask, bias, causal, self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, H * Dh))  # (B, T, D)

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, "
                f"cross={self.cross}, rotary={bool(self.rotary)}")


__all__ = ["KVCache", "MultiHeadAttention", "attention_mask", "scaled_dot_product_attention"]
