"""Word-vector objectives: word2vec's negative sampling, plain and fused with a sparse hand-written backward, and
simpler GloVe's weighted least squares.

Posts: “噪声对比估计”杂谈 (https://kexue.fm/archives/5617) for negative sampling as noise-contrastive estimation;
更别致的词向量模型(四) (https://kexue.fm/archives/4675) for simpler GloVe. Re-exported by :mod:`kexue.losses`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def negative_sampling_loss(inputs: Tensor, positive: Tensor, negatives: Tensor) -> Tensor:
    """Per-example loss ``-log σ(<u_o, v>) - Σ_k log σ(-<u_k, v>)`` of word2vec's negative sampling.

    The noise-contrastive view of “噪声对比估计”杂谈 (https://kexue.fm/archives/5617): a binary classifier
    telling the observed context (label 1) from ``K`` noise words (label 0); at the optimum the logit
    ``<u_o, v>`` is ``PMI - log K``. Shapes: ``inputs`` (B, D), ``positive`` (B, D), ``negatives``
    (B, K, D) -> (B,).
    """
    pos = (inputs * positive).sum(-1)  # (B,)
    neg = torch.einsum("bd,bkd->bk", inputs, negatives)  # (B, K)
    return -nn.functional.logsigmoid(pos) - nn.functional.logsigmoid(-neg).sum(-1)


class _NegativeSampling(torch.autograd.Function):
    """Forward: the per-example loss of :func:`negative_sampling_loss`; backward: its gradient written by hand as
    two sparse ``(V, D)`` tensors (the rows touched), with no autograd graph over the gathers. ``context`` (B,)
    is skip-gram's input word; ``context`` (B, C) with -1 padding is CBOW's window, whose input is the mean
    (and whose words get word2vec's update, see :func:`cbow_negative_sampling`)."""

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # word2vec stays in float32 whatever the precision plugin says
    @torch.autocast("cuda", enabled=False)
    def forward(ctx, inp: Tensor, out: Tensor, context: Tensor, target: Tensor, noise: Tensor) -> Tensor:
        (b, dim), (groups, k) = (len(target), inp.shape[1]), noise.shape
        size = -(-b // groups)  # examples per group (the last group is padded with zero vectors)
        if context.dim() == 1:
            v, valid = inp.index_select(0, context), None  # (B, D)
        else:
            valid = context >= 0  # (B, C)
            rows = inp.index_select(0, context.clamp_min(0).view(-1)).view(b, -1, dim)  # (B, C, D)
            count = valid.sum(1, keepdim=True).clamp_min(1).to(inp.dtype)  # (B, 1)
            v = torch.bmm(valid.to(inp.dtype).unsqueeze(1), rows).squeeze(1) / count  # mean of the window: (B, D)
        u = out.index_select(0, target)  # (B, D)
        n = out.index_select(0, noise.reshape(-1)).view(groups, k, dim)  # (G, K, D)
        v_groups = _pad_rows(v, groups * size).view(groups, size, dim)  # (G, S, D)
        pos = (v * u).sum(-1)  # (B,)
        # A contiguous (G, D, K) operand: bmm on the transposed view was 2.5x slower for these small matrices.
        neg = torch.bmm(v_groups, n.transpose(1, 2).contiguous()).view(groups * size, k)[:b]  # (B, K)
        ctx.save_for_backward(v_groups, u, n, pos, neg, context, target, noise, valid)
        ctx.shapes = inp.shape, out.shape
        return nn.functional.softplus(-pos) + nn.functional.softplus(neg).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None, None, None]:
        v_groups, u, n, pos, neg, context, target, noise, valid = ctx.saved_tensors
        (groups, size, dim), b = v_groups.shape, len(target)
        v = v_groups.view(-1, dim)[:b]
        g_pos = (torch.sigmoid(pos) - 1) * grad  # d loss / d <v, u>: (B,)
        g_neg = _pad_rows(torch.sigmoid(neg) * grad[:, None], groups * size).view(groups, size, -1)  # (G, S, K)
        g_v = torch.bmm(g_neg, n).view(-1, dim)[:b].addcmul_(g_pos[:, None], u)  # (B, D)
        g_out = v.new_empty(b + noise.numel(), dim)  # rows of `target`, then of `noise`: (B + G * K, D)
        torch.mul(g_pos[:, None], v, out=g_out[:b])
        torch.bmm(g_neg.transpose(1, 2).contiguous(), v_groups, out=g_out[b:].view(groups, -1, dim))
        inp_shape, out_shape = ctx.shapes
        if valid is None:
            grad_inp = torch.sparse_coo_tensor(context[None], g_v, inp_shape, check_invariants=False)
        else:  # word2vec's CBOW rule: every word of a window gets the window's whole gradient (see cbow_...)
            example, slot = valid.nonzero(as_tuple=True)  # (M,), (M,)
            values = g_v.index_select(0, example)  # (M, D)
            grad_inp = torch.sparse_coo_tensor(context[example, slot][None], values, inp_shape, check_invariants=False)
        rows = torch.cat([target, noise.reshape(-1)])[None]
        grad_out = torch.sparse_coo_tensor(rows, g_out, out_shape, check_invariants=False)
        return grad_inp, grad_out, None, None, None


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    """``x`` (N, ...) with zero rows appended up to ``rows`` (no copy when ``N == rows``)."""
    return x if len(x) == rows else torch.cat([x, x.new_zeros(rows - len(x), *x.shape[1:])])


def skipgram_negative_sampling(inp: Tensor, out: Tensor, context: Tensor, target: Tensor, noise: Tensor) -> Tensor:
    """Per-pair loss of skip-gram with negative sampling, with a fused, sparse backward (the fast path).

    The same value as :func:`negative_sampling_loss` (``-log σ(<u_t, v_c>) - Σ_k log σ(-<u_k, v_c>)``), but
    the embedding rows are gathered inside and the backward is written by hand, returning sparse gradients
    for ``inp`` and ``out`` like ``nn.Embedding(sparse=True)`` does: one autograd node instead of a dozen.
    Noise words may be shared: with ``noise`` of shape ``(G, K)``, consecutive groups of ``ceil(B / G)``
    pairs use the same ``K`` noise words (``G = B``: word2vec's independent draws). Each pair still sees
    ``K`` i.i.d. draws from the noise distribution, so the expected gradient is unchanged; the group's
    scores become one small matrix product instead of ``B * K`` gathered rows (Ji et al. 2016,
    "Parallelizing Word2Vec in Shared and Distributed Memory", share negatives the same way).

    Shapes: ``inp``, ``out`` (V, D) weights; ``context``, ``target`` (B,) ids; ``noise`` (G, K) ids -> (B,).
    """
    if context.dim() != 1 or not 1 <= len(noise) <= len(target):
        raise ValueError(f"context must be (B,) and noise needs 1..{len(target)} groups (rows), got "
                         f"{tuple(context.shape)} and {len(noise)}")
    return _NegativeSampling.apply(inp, out, context, target, noise)


def cbow_negative_sampling(inp: Tensor, out: Tensor, contexts: Tensor, target: Tensor, noise: Tensor) -> Tensor:
    """Per-window loss of CBOW with negative sampling, fused like :func:`skipgram_negative_sampling`.

    The input vector of a window is the mean of its context words' ``inp`` rows (word2vec's CBOW with
    ``cbow_mean=1``); the loss is :func:`negative_sampling_loss` of that mean against the target and the noise
    words, shared by groups of windows as in the skip-gram case. The backward pass follows word2vec's update
    rule rather than the exact gradient: every context word receives the gradient of the mean itself, not that
    over the window size (word2vec.c and gensim do the same; with the exact gradient the input vectors learned
    several times slower: wordsim353 ρ 0.01 against gensim's 0.14 in ``benchmarks/word2vec_speed.py --mode
    cbow``, 0.17 with this rule). ``out``'s gradient is exact.

    Shapes: ``inp``, ``out`` (V, D); ``contexts`` (B, C) ids with -1 padding; ``target`` (B,); ``noise`` (G, K)
    -> (B,).
    """
    if contexts.dim() != 2 or not 1 <= len(noise) <= len(target):
        raise ValueError(f"contexts must be (B, C) and noise needs 1..{len(target)} groups (rows), got "
                         f"{tuple(contexts.shape)} and {len(noise)}")
    return _NegativeSampling.apply(inp, out, contexts, target, noise)


def simpler_glove_loss(vi: Tensor, vj: Tensor, log_pmi: Tensor, weight: Tensor) -> Tensor:
    """Per-entry loss ``w_ij (<v_i, v_j> - log P(i,j) / (P(i) P(j)))^2`` of simpler GloVe (更别致的词向量模型
    (四), https://kexue.fm/archives/4675): one set of vectors, no biases. ``vi``, ``vj`` (B, D); ``log_pmi``,
    ``weight`` (B,) -> (B,)."""
    return weight * ((vi * vj).sum(-1) - log_pmi) ** 2


def glove_weight(x: Tensor, x_max: float, alpha: float = 0.75, cap: bool = True) -> Tensor:
    """``(x / x_max)^alpha``, capped at 1 when ``cap`` (GloVe's weighting); ``x`` (B,) -> (B,)."""
    w = (x / x_max) ** alpha
    return w.clamp_max(1.0) if cap else w


__all__ = ["cbow_negative_sampling", "glove_weight", "negative_sampling_loss", "simpler_glove_loss",
           "skipgram_negative_sampling"]
