"""Text encoders: ``(B, T)`` token ids (0 = padding) to ``(B, D)`` text vectors.

- :class:`MeanEmbeddingEncoder`: the "average the word vectors" baseline of SVD分解(三)
  (https://kexue.fm/archives/4233), fastText-style when fed char 1-2-gram ids.
- :class:`ConvEncoder`: a small multi-width CNN with masked max- or mean-over-time pooling.
- :class:`RecurrentEncoder`: a bidirectional GRU/LSTM with masked max-, mean- or last-state pooling.
- :class:`CharTokenEncoder` (:class:`CharConvEncoder`, :class:`CharRecurrentEncoder`): per-character vectors
  ``(B, T, D)`` for sequence labelling (no pooling).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def init_embedding_(embedding: nn.Embedding, std: float | None) -> None:
    """Re-draw ``embedding``'s rows from ``N(0, std^2)`` in place, padding row kept at zero; ``None`` keeps PyTorch's
    ``N(0, 1)``.

    A small ``std`` matters for the averaged n-gram model of SVD分解(三) (https://kexue.fm/archives/4233): with
    ``N(0, 1)`` rows the mean of a short text's few n-grams starts as a large random vector that the head fits and
    the data must then undo, and the model overfits before it generalises (BENCHMARKS.md, section sentiment).
    """
    if std is None:
        return
    if std < 0:
        raise ValueError(f"embed_init_std must be >= 0, got {std}")
    with torch.no_grad():
        nn.init.normal_(embedding.weight, std=std)  # (V, E)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx].zero_()


class MeanEmbeddingEncoder(nn.Module):
    """Mean of the embeddings of the non-padding ids: ``(B, T)`` ids -> ``(B, D)``.

    The "average the word vectors" text vector of SVD分解(三) (https://kexue.fm/archives/4233), fastText-style when
    fed hashed char n-gram ids.

    Args:
        num_embeddings: vocabulary or hash-bucket count (id 0 is padding).
        embed_dim: output size ``D``.
        dropout: dropout on the mean vector.
        embed_init_std: normal initialisation scale of the embedding rows (:func:`init_embedding_`); ``None``
            keeps PyTorch's ``N(0, 1)``.
    """

    def __init__(
        self, num_embeddings: int, embed_dim: int = 64, dropout: float = 0.0, embed_init_std: float | None = None
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        init_embedding_(self.embedding, embed_init_std)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = embed_dim

    def forward(self, ids: Tensor) -> Tensor:
        mask = (ids > 0).unsqueeze(-1).to(self.embedding.weight.dtype)  # (B, T, 1)
        total = (self.embedding(ids) * mask).sum(1)  # (B, D)
        return self.dropout(total / mask.sum(1).clamp(min=1.0))  # (B, D)


class ConvEncoder(nn.Module):
    """Embedding, parallel 1-D convolutions of several widths, ReLU, pooling over time (padding masked):
    ``(B, T)`` ids -> ``(B, D)``.

    The sentiment task's alternative to the averaged n-grams (its loss post: https://kexue.fm/archives/4293).
    Inputs shorter than the widest kernel are padded with id 0 inside :meth:`forward`, so callers need no minimum
    length.

    Args:
        num_embeddings: vocabulary or hash-bucket count (id 0 is padding).
        embed_dim: embedding size.
        hidden_dim: channels per kernel width; output size ``D = hidden_dim * len(kernel_sizes)``.
        kernel_sizes: convolution widths.
        dropout: dropout on the embeddings and on the pooled vector.
        pool: ``"max"`` or ``"mean"`` over the unpadded steps. Max detects whether a pattern occurs;
            mean measures how much of the text it covers, which suits long reviews that mix praise
            and complaint.
        embed_init_std: normal initialisation scale of the embedding rows (:func:`init_embedding_`).
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        kernel_sizes: Sequence[int] = (2, 3, 4),
        dropout: float = 0.3,
        pool: str = "max",
        embed_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be one or more widths >= 1, got {list(kernel_sizes)}")
        self.pool = pool
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        init_embedding_(self.embedding, embed_init_std)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden_dim, k, padding=k // 2) for k in kernel_sizes)
        self.min_length = max(kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden_dim * len(kernel_sizes)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.shape[1] < self.min_length:
            ids = F.pad(ids, (0, self.min_length - ids.shape[1]))  # (B, T') with T' = widest kernel; 0 = padding
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
        embed_init_std: normal initialisation scale of the embedding rows (:func:`init_embedding_`).

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
        embed_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("max", "mean", "last") or (skip and pooling == "last"):
            raise ValueError(f"pooling must be 'max', 'mean' or 'last' (not with skip), got {pooling!r}")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        init_embedding_(self.embedding, embed_init_std)
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
    """Per-character vectors for sequence labelling: ``ids (B, T, G)``, ``mask (B, T)`` -> ``(B, T, D)``.

    The base of :class:`CharConvEncoder` and :class:`CharRecurrentEncoder`: each character comes with ``G``
    hashed feature ids (its own id and, for ``G = 3``, the bigrams ending and starting at it, as
    :func:`kexue.text.char_features` makes them); their embeddings are concatenated into a ``(B, T, G * E)``
    input, which a subclass turns into context vectors in :meth:`contextualize`. The tagger of
    简明条件随机场CRF介绍 (https://kexue.fm/archives/5542) and CRF用过了,不妨再了解下更快的MEMM?
    (https://kexue.fm/archives/7213) puts its emission layer on top.

    Args:
        num_embeddings: embedding rows (hash buckets; id 0 is padding).
        num_features: ``G``, hashed features per character.
        embed_dim: ``E``, size of each feature embedding.
        dropout: dropout on the embeddings and on the outputs.

    Subclasses set ``output_dim`` (``D``). Padded steps (``mask`` false) may hold anything; callers ignore them.
    """

    output_dim: int

    def __init__(self, num_embeddings: int = 2**16, num_features: int = 3, embed_dim: int = 32,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if num_embeddings < 2 or num_features < 1 or embed_dim < 1:
            raise ValueError(f"need num_embeddings >= 2, num_features >= 1, embed_dim >= 1, got {num_embeddings}, "
                             f"{num_features}, {embed_dim}")
        self.num_features = num_features
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        B, T, G = ids.shape
        if G != self.num_features:
            raise ValueError(f"ids must be (B, T, num_features={self.num_features}), got {tuple(ids.shape)}")
        x = self.dropout(self.embedding(ids).view(B, T, -1))  # (B, T, G*E)
        return self.dropout(self.contextualize(x, mask))  # (B, T, D)

    def contextualize(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x (B, T, G*E)``, ``mask (B, T)`` -> ``(B, T, D)``."""
        raise NotImplementedError


class CharConvEncoder(CharTokenEncoder):
    """A stack of 1-D convolutions over the character embeddings, ReLU after each (padding zeroed between
    layers so it never leaks into real characters): ``ids (B, T, G)``, ``mask (B, T)`` -> ``(B, T, hidden_dim)``.

    The fast default encoder of tasks ``cws`` and ``ner`` (https://kexue.fm/archives/5542).

    Args:
        num_embeddings, num_features, embed_dim, dropout: as :class:`CharTokenEncoder`.
        hidden_dim: channels of every layer, ``D``.
        num_layers: convolutions (each widens the context by ``kernel_size - 1`` characters).
        kernel_size: width, odd so that each output is centred on its character.
    """

    def __init__(self, num_embeddings: int = 2**16, num_features: int = 3, embed_dim: int = 32,
                 hidden_dim: int = 128, num_layers: int = 2, kernel_size: int = 3, dropout: float = 0.2) -> None:
        super().__init__(num_embeddings, num_features, embed_dim, dropout)
        if kernel_size < 1 or kernel_size % 2 == 0 or num_layers < 1:
            raise ValueError(f"need an odd kernel_size and num_layers >= 1, got {kernel_size}, {num_layers}")
        dims = [num_features * embed_dim] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
                                   for a, b in zip(dims, dims[1:]))
        self.output_dim = hidden_dim

    def contextualize(self, x: Tensor, mask: Tensor) -> Tensor:
        h = x.transpose(1, 2)  # (B, G*E, T)
        for conv in self.convs:
            h = F.relu(conv(h)).masked_fill(~mask[:, None, :], 0.0)  # (B, H, T); padding stays 0
        return h.transpose(1, 2)  # (B, T, H)


class CharRecurrentEncoder(CharTokenEncoder):
    """A bidirectional LSTM over the unpadded characters: ``ids (B, T, G)``, ``mask (B, T)`` ->
    ``(B, T, 2 * hidden_dim)``. The BiLSTM tagger of https://kexue.fm/archives/5542 (about 3x slower per batch
    than :class:`CharConvEncoder` on CPU).

    Args:
        num_embeddings, num_features, embed_dim, dropout: as :class:`CharTokenEncoder`.
        hidden_dim: LSTM size per direction; ``D = 2 * hidden_dim``.

    One layer, and no ``num_layers`` argument on purpose: ``--model.encoder`` keeps the arguments of the same name
    when it switches class, so a ``num_layers`` here would silently inherit the CNN's.
    """

    def __init__(self, num_embeddings: int = 2**16, num_features: int = 3, embed_dim: int = 32,
                 hidden_dim: int = 128, dropout: float = 0.2) -> None:
        super().__init__(num_embeddings, num_features, embed_dim, dropout)
        self.rnn = nn.LSTM(num_features * embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden_dim

    def contextualize(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return h  # (B, T, 2H)


class CharDGCNNEncoder(CharTokenEncoder):
    """Dilated gated convolutions (DGCNN) over the character embeddings: ``ids (B, T, G)``, ``mask (B, T)`` ->
    ``(B, T, hidden_dim)``. The non-BERT encoder of Su's 2019 triple extractor (kg-2019, the model before
    用bert4keras做三元组抽取, https://kexue.fm/archives/7161; DGCNN is described in 基于CNN的阅读理解式问答模型：DGCNN,
    https://kexue.fm/archives/5409).

    Each block is a residual gate ``h <- g * h + (1 - g) * c`` with ``[c, g'] = conv(h)`` (a width-3 convolution of
    dilation ``d`` to ``2 * hidden_dim`` channels), ``g = sigmoid(dropout(g'))``; padding is zeroed after every
    block. The dilations grow the context quickly (1, 2, 5 repeated reaches 33 characters in 6 blocks) at the cost
    of one convolution each.

    Args:
        num_embeddings, num_features, embed_dim, dropout: as :class:`CharTokenEncoder`.
        hidden_dim: ``D``, the width after the input projection.
        dilations: one block per entry, its dilation rate.
        gate_dropout: dropout on the gate's pre-activation (the kg-2019 code drops 0.1 there).
    """

    def __init__(self, num_embeddings: int = 2**16, num_features: int = 3, embed_dim: int = 32,
                 hidden_dim: int = 128, dilations: tuple[int, ...] = (1, 2, 5, 1, 2, 5, 1, 1),
                 gate_dropout: float = 0.1, dropout: float = 0.2) -> None:
        super().__init__(num_embeddings, num_features, embed_dim, dropout)
        if not dilations or min(dilations) < 1 or hidden_dim < 1:
            raise ValueError(f"need dilations >= 1 (at least one) and hidden_dim >= 1, got {list(dilations)}, "
                             f"{hidden_dim}")
        self.project = nn.Linear(num_features * embed_dim, hidden_dim)
        self.convs = nn.ModuleList(nn.Conv1d(hidden_dim, 2 * hidden_dim, 3, padding=d, dilation=d) for d in dilations)
        self.gate_dropout = nn.Dropout(gate_dropout)
        self.output_dim = hidden_dim

    def contextualize(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask[:, None, :]  # (B, 1, T)
        h = self.project(x).transpose(1, 2).masked_fill(~keep, 0.0)  # (B, D, T)
        for conv in self.convs:
            c, g = conv(h).chunk(2, dim=1)  # (B, D, T) each
            g = torch.sigmoid(self.gate_dropout(g))
            h = (g * h + (1 - g) * c).masked_fill(~keep, 0.0)
        return h.transpose(1, 2)  # (B, T, D)
