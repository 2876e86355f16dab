"""Text encoders: ``(B, T)`` token ids (0 = padding) to ``(B, D)`` text vectors.

- :class:`MeanEmbeddingEncoder`: the "average the word vectors" baseline of SVD分解(三)
  (https://kexue.fm/archives/4233), fastText-style when fed char 1-2-gram ids.
- :class:`ConvEncoder`: a small multi-width CNN with masked max- or mean-over-time pooling.
- :class:`RecurrentEncoder`: a bidirectional GRU/LSTM with masked max-, mean- or last-state pooling.
- :class:`CharTokenEncoder`: per-character vectors ``(B, T, D)`` for sequence labelling (no pooling).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MeanEmbeddingEncoder(nn.Module):
    """Mean of the embeddings of the non-padding ids.

    Args:
        num_embeddings: vocabulary or hash-bucket count (id 0 is padding).
        embed_dim: output size ``D``.
        dropout: dropout on the mean vector.
    """

    def __init__(self, num_embeddings: int, embed_dim: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = embed_dim

    def forward(self, ids: Tensor) -> Tensor:
        mask = (ids > 0).unsqueeze(-1).to(self.embedding.weight.dtype)  # (B, T, 1)
        total = (self.embedding(ids) * mask).sum(1)  # (B, D)
        return self.dropout(total / mask.sum(1).clamp(min=1.0))  # (B, D)


class ConvEncoder(nn.Module):
    """Embedding, parallel 1-D convolutions of several widths, ReLU, max over time (padding masked).

    Args:
        num_embeddings: vocabulary or hash-bucket count (id 0 is padding).
        embed_dim: embedding size.
        hidden_dim: channels per kernel width; output size ``D = hidden_dim * len(kernel_sizes)``.
        kernel_sizes: convolution widths.
        dropout: dropout on the embeddings and on the pooled vector.
        pool: ``"max"`` or ``"mean"`` over the unpadded steps. Max detects whether a pattern occurs;
            mean measures how much of the text it covers, which suits long reviews that mix praise
            and complaint.
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        kernel_sizes: Sequence[int] = (2, 3, 4),
        dropout: float = 0.3,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        self.pool = pool
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden_dim, k, padding=k // 2) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden_dim * len(kernel_sizes)

    def forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[1]
        pad = (ids == 0).unsqueeze(1)  # (B, 1, T)
        count = (~pad).sum(-1).clamp(min=1)  # (B, 1)
        x = self.dropout(self.embedding(ids)).transpose(1, 2)  # (B, E, T)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))[..., :T].masked_fill(pad, 0.0)  # (B, H, T); even widths give T+1 steps
            pooled.append(h.amax(-1) if self.pool == "max" else h.sum(-1) / count)  # (B, H); ReLU ≥ 0
        out = torch.cat(pooled, dim=-1)  # (B, H * len(kernel_sizes))
        return self.dropout(out)


class RecurrentEncoder(nn.Module):
    """Embedding, bidirectional GRU or LSTM over the unpadded steps, then pooling over time.

    Args:
        num_embeddings: vocabulary or hash-bucket count (id 0 is padding).
        embed_dim: embedding size ``E``.
        hidden_dim: hidden size per direction ``H``; output size ``D = 2H`` (``2H + E`` with ``skip``).
        cell: ``"gru"`` or ``"lstm"``.
        dropout: dropout on the embeddings and on the pooled vector.
        pooling: ``"max"`` or ``"mean"`` over the unpadded steps, or ``"last"``: the final states of both
            directions (the sentence vector of 基于GRU和AM-Softmax的句子相似度模型, kexue.fm/archives/5743).
        skip: pool over ``[RNN state; embedding]`` per step, so the vector keeps the bag of embeddings beside
            the context the RNN adds (not with ``"last"``).

    ``forward(ids)``: ``(B, T)`` ids, or ``(B, T, G)`` with ``G`` hashed features per step whose embeddings are
    summed (padding: feature 0 is id 0) -> ``(B, D)``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        cell: str = "gru",
        dropout: float = 0.3,
        pooling: str = "max",
        skip: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("max", "mean", "last") or (skip and pooling == "last"):
            raise ValueError(f"pooling must be 'max', 'mean' or 'last' (not with skip), got {pooling!r}")
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.pooling, self.skip = pooling, skip
        self.output_dim = 2 * hidden_dim + (embed_dim if skip else 0)

    def forward(self, ids: Tensor) -> Tensor:
        B, T = ids.shape[:2]
        mask = (ids if ids.dim() == 2 else ids[..., 0]) > 0  # (B, T)
        lengths = mask.sum(1).clamp(min=1)  # (B,)
        x = self.embedding(ids)
        x = self.dropout(x if ids.dim() == 2 else x.sum(2))  # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, last = self.rnn(packed)
        if self.pooling == "last":
            last = last[0] if isinstance(last, tuple) else last  # LSTM: (h_n, c_n)
            return self.dropout(torch.cat([last[0], last[1]], dim=-1))  # (B, 2H): forward end, backward start
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=T)  # (B, T, 2H)
        if self.skip:
            h = torch.cat([h, x], dim=-1)  # (B, T, D)
        pad = (torch.arange(T, device=ids.device)[None, :] >= lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
        if self.pooling == "max":
            return self.dropout(h.masked_fill(pad, float("-inf")).amax(1))  # (B, D)
        return self.dropout(h.masked_fill(pad, 0.0).sum(1) / lengths[:, None])  # (B, D)


class CharTokenEncoder(nn.Module):
    """Per-character vectors: concatenated feature embeddings, then a BiLSTM or a stack of 1-D convolutions.

    Args:
        num_buckets: embedding rows (hash buckets; id 0 is padding).
        num_features: ``G``, hashed features per character.
        embed_dim: size of each feature embedding.
        hidden_dim: LSTM size per direction, or CNN channels; output ``D = 2 * hidden_dim`` (lstm) or
            ``hidden_dim`` (cnn).
        encoder: ``"lstm"`` or ``"cnn"`` (``num_layers`` convolutions of width ``kernel_size``).
        kernel_size: CNN width (odd, so each output is centred on its character).
        num_layers: CNN layers.
        dropout: dropout on the embeddings and the outputs.

    ``forward(ids (B, T, G), mask (B, T) bool) -> (B, T, D)``.
    """

    def __init__(self, num_buckets: int, num_features: int, embed_dim: int, hidden_dim: int,
                 encoder: str = "lstm", kernel_size: int = 3, num_layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_buckets, embed_dim, padding_idx=0)
        in_dim = num_features * embed_dim
        self.kind = encoder
        if encoder == "lstm":
            self.rnn = nn.LSTM(in_dim, hidden_dim, batch_first=True, bidirectional=True)
            self.output_dim = 2 * hidden_dim
        elif encoder == "cnn":
            dims = [in_dim] + [hidden_dim] * num_layers
            self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
                                       for a, b in zip(dims, dims[1:]))
            self.output_dim = hidden_dim
        else:
            raise ValueError(f"unknown encoder {encoder!r}: expected 'lstm' or 'cnn'")
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        B, T, G = ids.shape
        x = self.dropout(self.embedding(ids).view(B, T, -1))  # (B, T, G*E)
        if self.kind == "lstm":
            lengths = mask.sum(1).clamp(min=1).cpu()  # (B,)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=T)  # (B, T, 2H)
        else:
            h = x.transpose(1, 2)  # (B, G*E, T)
            for conv in self.convs:
                h = F.relu(conv(h)).masked_fill(~mask[:, None, :], 0.0)  # (B, H, T); padding stays 0
            h = h.transpose(1, 2)  # (B, T, H)
        return self.dropout(h)
