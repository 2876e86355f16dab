"""A Transformer stack configured by one dataclass, general enough for BERT (post-LN, GELU, learned positions),
GPT-2 (pre-LN, causal) and Llama (RMSNorm, rotary, grouped-query attention, SwiGLU, no biases), plus the text
encoders that plug it into the existing tasks (``--model.encoder kexue.nn.TransformerEncoder``).

Posts: 《Attention is All You Need》浅读 (https://kexue.fm/archives/4765) for the block;
从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933) for the masks that make one stack an
encoder, a language model or
UniLM; 基于Conditional Layer Normalization的条件文本生成 (https://kexue.fm/archives/7124) for ``condition_dim``;
Google新作Synthesizer (https://kexue.fm/archives/7430) for ``attention``.

A decoder is the same stack with ``causal=True`` (and ``cross_attention=True`` to attend to an encoder's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.nn.attention import KVCache, MultiHeadAttention
from kexue.nn.encoders import CharTokenEncoder, init_embedding_
from kexue.nn.masks import combine_masks, padding_mask
from kexue.nn.normalization import ConditionalLayerNorm
from kexue.nn.positions import LearnedPositions, RotaryEmbedding, SinusoidalPositions
from kexue.nn.synthesizer import COMPONENTS, SYNTHESISED, SynthesizerAttention


@dataclass
class TransformerConfig:
    """Every knob of :class:`Transformer` (``--model.encoder.config.num_layers 4`` on the CLI).

    Args:
        dim: model width ``D``.
        num_layers: blocks.
        num_heads: attention heads ``H``.
        num_kv_heads: key/value heads for grouped-query attention (``None``: ``H``).
        head_dim: per-head width (``None``: ``D / H``).
        ffn_dim: hidden width of the feed-forward (``None``: ``4 D``).
        activation: ``"gelu"`` (BERT), ``"gelu_tanh"`` (GPT-2), ``"relu"`` (the original), ``"swiglu"`` (Llama).
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        prenorm: normalise each sublayer's input (GPT-2, Llama) instead of its residual sum (BERT, the original).
        final_norm: a norm after the last block (``None``: when ``prenorm``).
        embedding_norm: a norm on the input vectors (BERT's embedding LayerNorm).
        eps: the norms' variance floor (BERT 1e-12, GPT-2 1e-5, Llama 1e-5 or 1e-6).
        bias: biases in attention and feed-forward maps.
        dropout: on embeddings and after every sublayer.
        attention_dropout: on the attention weights.
        positions: ``"sinusoidal"`` (the post's), ``"learned"``, ``"rotary"`` or ``"none"`` (the owner adds them).
        max_length: positions for ``"learned"`` and the Synthesizer's score size.
        rope_base: rotary frequency base.
        rope_interleaved: rotary pairs are adjacent columns (GGUF / Meta layout) rather than halves (HF layout).
        causal: each position attends to itself and the left only (a language model, a decoder).
        cross_attention: each block also attends to a ``context`` (an encoder's output).
        condition_dim: when set, every norm is a :class:`ConditionalLayerNorm` on a ``condition`` of this size.
        attention: ``"dot"`` (scaled dot-product) or a Synthesizer kind (:class:`kexue.nn.SynthesizerAttention`):
            ``"dense"``, ``"random"``, ``"factorized_dense"``, ``"factorized_random"``, or a ``+`` mixture with
            ``"dot"`` such as ``"dense+dot"`` (trained weights over the score matrices).
        synthesizer_rank: rank of the factorised Synthesizer kinds.
        synthesizer_trainable: train the random Synthesizer's scores (``False``: fixed at initialisation).
    """

    dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    ffn_dim: int | None = None
    activation: Literal["gelu", "gelu_tanh", "relu", "swiglu"] = "gelu"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    prenorm: bool = True
    final_norm: bool | None = None
    embedding_norm: bool = False
    eps: float = 1e-5
    bias: bool = True
    dropout: float = 0.1
    attention_dropout: float = 0.0
    positions: Literal["sinusoidal", "learned", "rotary", "none"] = "sinusoidal"
    max_length: int = 512
    rope_base: float = 10000.0
    rope_interleaved: bool = False
    causal: bool = False
    cross_attention: bool = False
    condition_dim: int | None = None
    attention: str = "dot"
    synthesizer_rank: int = 8
    synthesizer_trainable: bool = True

    def __post_init__(self) -> None:
        if self.head_dim is None and (self.num_heads < 1 or self.dim % self.num_heads):
            raise ValueError(f"num_heads={self.num_heads} does not divide the width dim={self.dim}")
        if self.num_kv_heads is not None and (self.num_kv_heads < 1 or self.num_heads % self.num_kv_heads):
            raise ValueError(f"num_kv_heads={self.num_kv_heads} does not divide num_heads={self.num_heads}")
        parts = self.attention.split("+")
        if self.attention != "dot" and (set(parts) - set(COMPONENTS) or not set(parts) & set(SYNTHESISED)):
            raise ValueError(f"attention must be 'dot', a Synthesizer kind {list(SYNTHESISED)} or a '+' mixture "
                             f"of them and 'dot' (e.g. 'dense+dot'), got {self.attention!r}")
        for name in ("dim", "num_layers", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def coerce(cls, config: TransformerConfig | dict) -> TransformerConfig:
        """``config`` itself, or the config its dict describes (how a checkpoint's saved hyperparameters come)."""
        return config if isinstance(config, cls) else cls(**config)


class FeedForward(nn.Module):
    """Position-wise feed-forward: ``(…, D)`` -> ``(…, D)``; ``down(act(up(x)))``, or for SwiGLU
    ``down(silu(gate(x)) ⊙ up(x))``."""

    def __init__(self, dim: int, hidden_dim: int, activation: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        acts = {"gelu": F.gelu, "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"), "relu": F.relu}
        if activation not in (*acts, "swiglu"):
            raise ValueError(f"activation must be one of {[*acts, 'swiglu']}, got {activation!r}")
        self.act = acts.get(activation)
        self.up = nn.Linear(dim, hidden_dim, bias=bias)
        self.gate = nn.Linear(dim, hidden_dim, bias=bias) if activation == "swiglu" else None
        self.down = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate is not None:
            return self.down(F.silu(self.gate(x)) * self.up(x))  # (…, D)
        return self.down(self.act(self.up(x)))  # (…, D)


def make_norm(config: TransformerConfig) -> nn.Module:
    """The norm a config asks for: LayerNorm, RMSNorm, or :class:`ConditionalLayerNorm` when ``condition_dim``."""
    if config.condition_dim is not None:
        return ConditionalLayerNorm(config.dim, config.condition_dim, eps=config.eps)
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.dim, eps=config.eps)
    return nn.LayerNorm(config.dim, eps=config.eps, bias=config.bias)


def _normalize(norm: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    return norm(x, condition) if isinstance(norm, ConditionalLayerNorm) else norm(x)


def make_attention(config: TransformerConfig, layer: int, rotary: nn.Module | None) -> nn.Module:
    """Self-attention of block ``layer``: :class:`MultiHeadAttention` or a Synthesizer."""
    if config.attention == "dot":
        return MultiHeadAttention(config.dim, config.num_heads, config.num_kv_heads, config.head_dim, config.bias,
                                  config.attention_dropout, layer=layer, rotary=rotary)
    return SynthesizerAttention(config.dim, config.num_heads, config.max_length, config.attention,
                                config.synthesizer_rank, config.synthesizer_trainable, config.bias,
                                config.attention_dropout, layer=layer)


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each a residual sublayer with a norm before
    (``prenorm``) or after it: ``(B, T, D)`` -> ``(B, T, D)``."""

    def __init__(self, config: TransformerConfig, layer: int = 0, rotary: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.attn = make_attention(config, layer, rotary)
        self.attn_norm = make_norm(config)
        if config.cross_attention:
            self.cross = MultiHeadAttention(config.dim, config.num_heads, config.num_kv_heads, config.head_dim,
                                            config.bias, config.attention_dropout, cross=True, layer=layer)
            self.cross_norm = make_norm(config)
        self.ffn = FeedForward(config.dim, config.ffn_dim or 4 * config.dim, config.activation, config.bias)
        self.ffn_norm = make_norm(config)
        self.drop = nn.Dropout(config.dropout)

    def _sublayer(self, x: Tensor, fn, norm: nn.Module, condition: Tensor | None) -> Tensor:  # noqa: ANN001
        if self.config.prenorm:
            return x + self.drop(fn(_normalize(norm, x, condition)))  # (B, T, D)
        return _normalize(norm, x + self.drop(fn(x)), condition)  # (B, T, D)

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None,
                context: Tensor | None = None, context_mask: Tensor | None = None,
                condition: Tensor | None = None, cache: KVCache | None = None,
                positions: Tensor | None = None) -> Tensor:
        causal = self.config.causal
        x = self._sublayer(x, lambda h: self.attn(h, mask=mask, bias=bias, causal=causal, cache=cache,
                                                  positions=positions), self.attn_norm, condition)
        if self.config.cross_attention:
            x = self._sublayer(x, lambda h: self.cross(h, context, mask=context_mask), self.cross_norm, condition)
        return self._sublayer(x, self.ffn, self.ffn_norm, condition)  # (B, T, D)


class Transformer(nn.Module):
    """Input vectors ``(B, T, D)`` -> contextual vectors ``(B, T, D)``: positions, optional embedding norm, dropout,
    ``num_layers`` :class:`TransformerBlock` s, optional final norm. Token embeddings are the owner's (a BERT adds
    segment embeddings, a language model ties them to its output).

    Args:
        config: a :class:`TransformerConfig` (or its dict).
    """

    def __init__(self, config: TransformerConfig | dict = TransformerConfig()) -> None:  # noqa: B008 (read-only)
        super().__init__()
        config = TransformerConfig.coerce(config)
        self.config = config
        head_dim = config.head_dim or config.dim // config.num_heads
        self.rotary = RotaryEmbedding(head_dim, config.rope_base, config.rope_interleaved) \
            if config.positions == "rotary" else None
        self.positions = {"sinusoidal": lambda: SinusoidalPositions(config.dim),
                          "learned": lambda: LearnedPositions(config.max_length, config.dim)}.get(
            config.positions, lambda: None)()
        self.embedding_norm = make_norm(config) if config.embedding_norm else None
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TransformerBlock(config, i, self.rotary) for i in range(config.num_layers))
        final = config.prenorm if config.final_norm is None else config.final_norm
        self.final_norm = make_norm(config) if final else None

    def input_limit(self) -> tuple[int, str] | None:
        """``(max_length, why)`` when the stack cannot take longer inputs (learned positions, a Synthesizer's score
        matrix), else ``None``: read by :func:`kexue.models.sizes.input_limit`."""
        c = self.config
        if c.positions == "learned" or c.attention != "dot":
            return c.max_length, f"Transformer config.max_length, {c.positions} positions, {c.attention} attention"
        return None

    def new_cache(self) -> KVCache:
        """An empty :class:`KVCache` for incremental decoding (``causal`` stacks)."""
        return KVCache(len(self.layers))

    def forward(
        self,
        x: Tensor,
        padding: Tensor | None = None,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        context: Tensor | None = None,
        context_padding: Tensor | None = None,
        condition: Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Contextual vectors ``(B, T, D)`` of ``x`` ``(B, T, D)``.

        Args:
            padding: ``(B, S)`` ``True`` for real tokens (``S = T`` plus the cached positions when decoding).
            mask: an extra boolean attention mask broadcastable to ``(B, H, T, S)`` (e.g. :func:`seq2seq_mask`);
                ``causal`` configs add the causal mask themselves.
            bias: additive attention bias, broadcastable to ``(B, H, T, S)``.
            context: ``(B, S', D)`` for cross-attention; ``context_padding`` ``(B, S')`` its real tokens.
            condition: ``(B, C)`` for Conditional LayerNorm configs.
            cache: a :meth:`new_cache` to append this call's keys and values to.
            positions: ``(T,)`` or ``(B, T)`` position ids (default: ``cache.length + arange(T)``; left-padded
                batches pass their own).
        """
        B, T, D = x.shape
        past = cache.length if cache is not None else 0
        if D != self.config.dim:
            raise ValueError(f"input of shape {tuple(x.shape)} but the Transformer's width is dim={self.config.dim}")
        if padding is not None and tuple(padding.shape) != (B, past + T):
            raise ValueError(f"padding of shape {tuple(padding.shape)} for input {tuple(x.shape)}: need "
                             f"(B, cached + T) = {(B, past + T)}")
        if (self.config.condition_dim is None) != (condition is None):
            raise ValueError(f"condition {None if condition is None else tuple(condition.shape)} but the config "
                             f"has condition_dim={self.config.condition_dim}")
        if positions is None:
            positions = torch.arange(past, past + T, device=x.device)  # (T,)
        if self.positions is not None:
            x = self.positions(x, positions)  # (B, T, D)
        if self.embedding_norm is not None:
            x = _normalize(self.embedding_norm, x, condition)
        x = self.drop(x)
        attn_mask = combine_masks(None if padding is None else padding_mask(padding), mask)
        context_mask = None if context_padding is None else padding_mask(context_padding)
        for block in self.layers:
            x = block(x, attn_mask, bias, context, context_mask, condition, cache, positions)  # (B, T, D)
        return x if self.final_norm is None else _normalize(self.final_norm, x, condition)


def masked_pool(h: Tensor, valid: Tensor, pooling: str) -> Tensor:
    """Pool ``h`` ``(B, T, D)`` over the ``valid`` ``(B, T)`` steps: ``"mean"``, ``"max"`` or ``"first"``."""
    if pooling == "first":
        return h[:, 0]  # (B, D)
    if pooling == "max":
        return h.masked_fill(~valid[..., None], float("-inf")).amax(1).clamp(min=torch.finfo(h.dtype).min)
    weight = valid[..., None].to(h.dtype)  # (B, T, 1)
    return (h * weight).sum(1) / weight.sum(1).clamp(min=1.0)  # (B, D)


class TransformerEncoder(nn.Module):
    """Token ids ``(B, T)`` (0 = padding) -> text vectors ``(B, D)``: embedding, :class:`Transformer`, pooling.
    The encoder of the text-classification tasks: ``kexue run sentiment --model.encoder
    kexue.nn.TransformerEncoder --model.encoder.config.num_layers 2``.

    Args:
        num_embeddings: vocabulary or hash buckets (linked by the task).
        config: the stack's :class:`TransformerConfig` (``D = config.dim``).
        pooling: ``"mean"``, ``"max"`` over the real tokens, or ``"first"`` (a [CLS]-style first token).
        embed_init_std: normal initialisation scale of the embedding rows (:func:`init_embedding_`).
    """

    def __init__(self, num_embeddings: int, config: TransformerConfig = TransformerConfig(),  # noqa: B008
                 pooling: Literal["mean", "max", "first"] = "mean", embed_init_std: float | None = 0.02) -> None:
        super().__init__()
        config = TransformerConfig.coerce(config)
        self.embedding = nn.Embedding(num_embeddings, config.dim, padding_idx=0)
        init_embedding_(self.embedding, embed_init_std)
        self.transformer = Transformer(config)
        self.pooling, self.output_dim = pooling, config.dim

    def forward(self, ids: Tensor) -> Tensor:
        valid = ids > 0  # (B, T)
        return masked_pool(self.transformer(self.embedding(ids), padding=valid), valid, self.pooling)  # (B, D)


class CharTransformerEncoder(CharTokenEncoder):
    """Per-character vectors for sequence labelling (``cws``, ``ner``): ``ids (B, T, G)``, ``mask (B, T)`` ->
    ``(B, T, config.dim)``. The ``G`` feature embeddings of each character are concatenated and projected to the
    width, then a bidirectional :class:`Transformer` contextualises them; the task's CRF/MEMM/softmax head sits on top
    (``kexue run cws --model.encoder kexue.nn.CharTransformerEncoder``).

    Args:
        num_embeddings, num_features, embed_dim, dropout: as :class:`kexue.nn.CharTokenEncoder`.
        config: the stack's :class:`TransformerConfig`.
    """

    def __init__(self, num_embeddings: int = 2**16, num_features: int = 3, embed_dim: int = 32, dropout: float = 0.2,
                 config: TransformerConfig = TransformerConfig()) -> None:  # noqa: B008
        super().__init__(num_embeddings, num_features, embed_dim, dropout)
        config = TransformerConfig.coerce(config)
        self.project = nn.Linear(num_features * embed_dim, config.dim)
        self.transformer = Transformer(config)
        self.output_dim = config.dim

    def contextualize(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.transformer(self.project(x), padding=mask)  # (B, T, D)


__all__ = [
    "CharTransformerEncoder",
    "FeedForward",
    "Transformer",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerEncoder",
    "make_norm",
    "masked_pool",
]
