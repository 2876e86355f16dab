"""The network of task ``cond_lm``: a BERT whose every LayerNorm is conditional on a label embedding, run as a
left-to-right language model, with its own sampling loop.

Post: 基于Conditional Layer Normalization的条件文本生成 (https://kexue.fm/archives/7124).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from kexue.generation import GenerationConfig, apply_repetition_penalty, filter_top_k_top_p
from kexue.models.bert import Bert
from kexue.nn.masks import causal_mask


class ConditionalBertLM(nn.Module):
    """``ids (B, T)``, ``labels (B,)`` -> next-token logits ``(B, T, V)``: a :class:`Bert` with ``condition_dim`` (every
    LayerNorm conditional on the label embedding ``(B, C)``), the causal mask, and its MLM head as the output layer.

    Args:
        bert: built with ``config.condition_dim`` and an MLM head.
        num_labels: rows of the label embedding.
    """

    def __init__(self, bert: Bert, num_labels: int) -> None:
        super().__init__()
        if bert.config.condition_dim is None or bert.mlm is None:
            raise ValueError("ConditionalBertLM needs a Bert with config.condition_dim and an MLM head")
        self.bert = bert
        self.label_embedding = nn.Embedding(num_labels, bert.config.condition_dim)
        nn.init.normal_(self.label_embedding.weight, std=0.02)

    def forward(self, ids: Tensor, labels: Tensor) -> Tensor:
        """Next-token logits ``(B, T, V)`` of ``ids`` ``(B, T)`` under ``labels`` ``(B,)``."""
        mask = causal_mask(ids.shape[1], device=ids.device)  # (T, T): all target, no source (UniLM)
        hidden = self.bert(ids, mask=mask, condition=self.label_embedding(labels))  # (B, T, D)
        return self.bert.mlm_logits(hidden)  # (B, T, V)

    @torch.no_grad()
    def sample(self, labels: Tensor, bos_id: int, eos_id: int, config: GenerationConfig,
               banned: Sequence[int] = ()) -> list[list[int]]:
        """New token ids (without ``<eos>``) of one review per label of ``labels`` ``(B,)``, decoded by ``config``
        (greedy, the argmax, or sampling with temperature / top-k / top-p / repetition penalty), recomputing the
        whole prefix each step (no KV cache: T is short). ``banned`` ids (padding, ``<bos>``, ``<unk>``) are never
        emitted."""
        B, V = len(labels), self.bert.vocab_size
        generator = None if config.seed is None else torch.Generator().manual_seed(config.seed)
        ids = torch.full((B, 1), bos_id, dtype=torch.long, device=labels.device)  # (B, 1)
        seen = torch.zeros(B, V, dtype=torch.bool, device=labels.device)  # (B, V)
        done = torch.zeros(B, dtype=torch.bool, device=labels.device)  # (B,)
        for step in range(config.max_new_tokens):
            logits = self(ids, labels)[:, -1].float()  # (B, V)
            logits[:, list(banned)] = float("-inf")
            if config.penalises:  # sampling only: greedy is the plain argmax
                logits = apply_repetition_penalty(logits, seen, config.repetition_penalty)
            if step < config.min_new_tokens:
                logits[:, eos_id] = float("-inf")
            if config.do_sample:
                logits = filter_top_k_top_p(logits / config.temperature, config.top_k, config.top_p)
                probs = logits.softmax(-1).cpu()  # (B, V); sampled on the CPU so a seed gives the same text anywhere
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(ids.device)  # (B,)
            else:
                nxt = logits.argmax(-1)  # (B,)
            nxt = nxt.masked_fill(done, eos_id)
            ids = torch.cat([ids, nxt[:, None]], 1)  # (B, t + 1)
            seen[torch.arange(B), nxt] = True
            done |= nxt == eos_id
            if done.all():
                break
        rows = ids[:, 1:].tolist()
        return [row[: row.index(eos_id)] if eos_id in row else row for row in rows]


__all__ = ["ConditionalBertLM"]
