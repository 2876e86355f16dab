"""A causal (left-to-right) language model: token embedding, a ``causal`` :class:`kexue.nn.Transformer`, an output
projection to the vocabulary (tied to the embedding by default). GPT-2, GPT2_ML and Llama checkpoints load into it
(their loaders set the config: learned positions + pre-LN for GPT-2, rotary + RMSNorm + SwiGLU + GQA for Llama).

Post: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933): a language model is the
Transformer with the lower-triangular mask; 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292).
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor, nn

from kexue.models.sizes import check_positions
from kexue.nn.attention import KVCache
from kexue.nn.transformer import Transformer, TransformerConfig


def position_limit(config: TransformerConfig) -> int | None:
    """The longest input a stack of ``config`` takes: ``max_length`` when positions are learned or a Synthesizer's
    score matrix is ``max_length`` wide, else ``None`` (rotary, sinusoidal or no positions: unbounded)."""
    return config.max_length if config.positions == "learned" or config.attention != "dot" else None


class CausalLM(nn.Module):
    """``ids (B, T)`` -> next-token logits ``(B, T, V)``; the network component of task ``language_model``
    (``--model.net.config.num_layers 4``), freshly initialised. :class:`kexue.models.PretrainedCausalLM` is its
    twin that loads pretrained weights.

    Args:
        vocab_size: ``V`` (linked from ``data.vocab_size``).
        config: the stack's :class:`TransformerConfig`; ``causal`` is forced on.
        tie_embeddings: the output projection shares the embedding matrix (GPT-2, SmolLM2).
        init_std: normal initialisation scale of the embedding and output rows (GPT-2's 0.02).
        max_length: the longest example in tokens (linked from ``data.max_length``); more than the positions the
            stack has (:func:`position_limit`) is a :class:`~kexue.errors.UsageError`.

    The decoding functions call it as ``model(ids, padding=..., positions=..., cache=...)`` and ``model.new_cache()``.
    ``pretrained`` names the source of loaded weights (``None``: initialised here).
    """

    pretrained: str | None = None

    def __init__(self, vocab_size: int, config: TransformerConfig = TransformerConfig(),  # noqa: B008
                 tie_embeddings: bool = True, init_std: float = 0.02, max_length: int | None = None) -> None:
        super().__init__()
        config = replace(TransformerConfig.coerce(config), causal=True)
        check_positions(max_length, position_limit(config), "model.net")
        self.config, self.vocab_size = config, vocab_size
        self.embed = nn.Embedding(vocab_size, config.dim)
        nn.init.normal_(self.embed.weight, std=init_std)
        self.transformer = Transformer(config)
        self.lm_head = nn.Linear(config.dim, vocab_size, bias=False)
        if tie_embeddings:
            self.lm_head.weight = self.embed.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=init_std)

    def new_cache(self) -> KVCache:
        """An empty KV cache for :meth:`forward` (incremental decoding)."""
        return self.transformer.new_cache()

    def forward(self, ids: Tensor, padding: Tensor | None = None, positions: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """Logits ``(B, T, V)`` of the token after each of ``ids`` ``(B, T)``.

        ``padding`` ``(B, cached + T)``: ``True`` for real tokens (left-padded prompts); ``positions`` ``(B, T)``
        their position ids; ``cache``: this call's keys and values are appended to it.
        """
        if ids.dim() != 2 or (ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size)):
            raise ValueError(f"ids must be (B, T) token ids in [0, {self.vocab_size}), got shape {tuple(ids.shape)}")
        h = self.transformer(self.embed(ids), padding=padding, positions=positions, cache=cache)  # (B, T, D)
        return self.lm_head(h)  # (B, T, V)


__all__ = ["CausalLM", "position_limit"]
