"""Attention masks, as in 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933): the same
Transformer is a bidirectional encoder, a left-to-right language model or a seq2seq model (UniLM) depending only on
which positions each position may see.

Every function returns a boolean mask, ``True`` where a query may attend to a key, shaped to broadcast to the
attention scores ``(B, H, T, S)`` (:func:`kexue.nn.scaled_dot_product_attention`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(valid: Tensor) -> Tensor:
    """Key-padding mask from ``valid`` ``(B, S)`` (``True``/non-zero for real tokens): ``(B, 1, 1, S)``."""
    return valid.bool()[:, None, None, :]


def causal_mask(length: int, past: int = 0, device: torch.device | str | None = None) -> Tensor:
    """Left-to-right mask ``(T, past + T)``: query ``i`` (at position ``past + i``) sees keys ``0 .. past + i``."""
    return torch.ones(length, past + length, dtype=torch.bool, device=device).tril(past)


def seq2seq_mask(segment_ids: Tensor) -> Tensor:
    """UniLM's mask from ``segment_ids`` ``(B, T)`` (0 = source, 1 = target): ``(B, 1, T, T)``.

    A source position sees the whole source and nothing of the target; a target position sees the whole source and
    the target up to itself. With ``c`` the running count of target positions (``cumsum(segment_ids)``), query ``i``
    sees key ``j`` iff ``c_j <= c_i`` (the post's construction). All-zero segments give a bidirectional mask,
    all-one segments a causal one.
    """
    if segment_ids.dim() != 2:
        raise ValueError(f"segment_ids must be (B, T), got {tuple(segment_ids.shape)}")
    count = segment_ids.long().cumsum(dim=1)  # (B, T)
    return (count[:, None, :] <= count[:, :, None])[:, None]  # (B, 1, T, T)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (broadcasting), ``None`` ones skipped; ``None`` when all are."""
    out = None
    for mask in masks:
        if mask is not None:
            out = mask if out is None else out & mask
    return out


__all__ = ["causal_mask", "combine_masks", "padding_mask", "seq2seq_mask"]
