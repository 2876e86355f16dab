"""Task ``language_model``: a causal Transformer trained from scratch on characters, or a pretrained GPT-2 / GPT2_ML /
Llama-GGUF (SmolLM2) network continued (``--config smollm2``, ``--config gpt2``); ``predict`` continues prompt lines
with any decoding option (greedy, sampling with temperature / top-k / top-p / repetition penalty, beam search).

Posts: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933): a language model is the
Transformer with the lower-triangular mask, trained to predict each next token; 现在可以用Keras玩中文GPT2了
(https://kexue.fm/archives/7292): continuing Chinese text with a (pretrained) GPT-2.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn
from torchmetrics.text import Perplexity

from kexue.generation import SAMPLING, GenerationConfig, generate_many
from kexue.models.causal_lm import CausalLM
from kexue.models.lm_tokenizers import LMTokenizer
from kexue.nn.components import build_component, component_config
from kexue.stages import NextTokenStages

# The default network's stack, as the plain values a lazy_instance default must hold (--print_config shows it).
DEFAULT_STACK = dict(dim=128, num_layers=3, num_heads=4, ffn_dim=512, positions="rotary", max_length=128, dropout=0.1)
DEFAULT_GENERATION = replace(SAMPLING, max_new_tokens=40)  # kexue.generation.SAMPLING: the one default


class LanguageModel(NextTokenStages, L.LightningModule):
    """Next-token cross-entropy on ``{"ids", "padding"}`` batches; ``val/ppl`` and ``test/ppl`` are per-token
    perplexities (torchmetrics ``Perplexity``); samples go to W&B (a table) and to ``<run>/samples.txt``.

    Args:
        net: the network, ``ids (B, T)`` -> logits ``(B, T, V)`` with ``new_cache()`` and ``config.max_length`` (the
            decoding context): a fresh :class:`kexue.models.CausalLM` (every knob under ``--model.net.config``) or
            pretrained weights, :class:`kexue.models.PretrainedCausalLM` (``--model.net.source``). Its
            ``vocab_size`` and ``max_length`` are linked from the DataModule.
        tokenizer: the DataModule's tokenizer (a data link), to decode samples and predictions; the checkpoint keeps
            its config, so ``predict`` decodes from the checkpoint alone.
        generation: decoding for the samples and ``predict`` (:class:`kexue.generation.GenerationConfig`; its
            ``eos_id`` and ``pad_id`` come from the tokenizer): by default :data:`kexue.generation.SAMPLING` with
            40 new tokens; ``do_sample false`` is greedy, the argmax; ``num_return N`` prints N continuations
            per prompt (beams, or samples), tab-separated on the prompt's one line.
        num_samples: prompts sampled after each validation epoch (the starts of the first validation lines).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("generation", "num_samples")  # not restored from a checkpoint

    def __init__(
        self,
        net: nn.Module = lazy_instance(CausalLM, vocab_size=0, config=DEFAULT_STACK),  # noqa: B008 (vocab_size: linked)
        tokenizer: LMTokenizer | None = None,
        generation: GenerationConfig = DEFAULT_GENERATION,
        num_samples: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        if lr < 0 or weight_decay < 0 or num_samples < 0:
            raise ValueError(f"model.lr, model.weight_decay, model.num_samples must be >= 0, got {lr}, "
                             f"{weight_decay}, {num_samples}")
        if tokenizer is None:
            raise ValueError("model.tokenizer is required (the task links it from data.tokenizer)")
        net = component_config(net)  # before save_hyperparameters: see component_config
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer: LMTokenizer = build_component(tokenizer)  # a checkpoint's config dict, or the data's object
        self.hparams["tokenizer"] = self.tokenizer.config()  # what predict from a checkpoint rebuilds it from
        self.net = build_component(net)
        self.requires_checkpoint = getattr(self.net, "pretrained", None) is None  # pretrained: predicts as it is
        generation = generation if isinstance(generation, GenerationConfig) else GenerationConfig(**generation)
        self.generation = replace(generation, eos_id=self.tokenizer.eos_id, pad_id=self.tokenizer.pad_id)
        self.context = self.net.config.max_length
        if self.generation.max_new_tokens >= self.context:
            raise ValueError(f"model.generation.max_new_tokens={self.generation.max_new_tokens} does not fit the "
                             f"model's context of {self.context} tokens")
        self.val_ppl, self.test_ppl = Perplexity(ignore_index=-100), Perplexity(ignore_index=-100)
        self._sample_prompts: list[list[int]] = []

    def forward(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """Next-token logits ``(B, T, V)`` of ``ids`` ``(B, T)``."""
        return self.net(ids, padding=padding)

    def _logits_targets(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ids, padding = batch["ids"], batch["padding"]  # (B, T) each, right-padded
        logits = self.net(ids[:, :-1])  # (B, T-1, V); causal: padding on the right is never attended to
        targets = ids[:, 1:].masked_fill(~padding[:, 1:], -100)  # (B, T-1): no loss where there is no next token
        return logits, targets

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if batch_idx == 0 and not self._sample_prompts:
            ids, padding = batch["ids"][: self.hparams.num_samples], batch["padding"]
            self._sample_prompts = [row[keep][:4].tolist() for row, keep in zip(ids, padding)]  # <bos> + 3 tokens

    def _continue(self, prompts: list[list[int]]) -> list[tuple[str, list[str]]]:
        """``(prompt text, [continuation text] * num_return)`` per prompt of token ids, with :attr:`generation`."""
        budget = self.context - self.generation.max_new_tokens
        prompts = [p[-budget:] for p in prompts]
        was_training = self.net.training
        self.net.eval()
        try:
            outputs = generate_many(self.net, prompts, self.generation)
        finally:
            self.net.train(was_training)
        clean = lambda ids: " ".join(self.tokenizer.decode(ids).split())  # one line each, no special token
        return [(clean(p), [clean(o) for o in outs]) for p, outs in zip(prompts, outputs)]

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._sample_prompts or not self.trainer.is_global_zero:
            return
        rows = [[self.current_epoch, prompt, texts[0]] for prompt, texts in self._continue(self._sample_prompts)]
        self.write_samples(rows, ["epoch", "prompt", "sample"])

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        """One ``prompt<TAB>continuation[<TAB>continuation ...]`` line per prompt line (``num_return`` of them)."""
        prompts = [row[keep].tolist() for row, keep in zip(batch["ids"], batch["padding"])]  # left-padded
        return ["\t".join([text, *conts]) for text, (_, conts) in zip(batch["texts"], self._continue(prompts))]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


__all__ = ["LanguageModel"]
