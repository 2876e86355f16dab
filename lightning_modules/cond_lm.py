"""Task ``cond_lm``: reviews generated under a label (pos / neg) by a BERT whose every LayerNorm is a Conditional
LayerNorm on the label's embedding, trained as a left-to-right language model (UniLM's mask with an empty source,
i.e. the causal mask); ``predict`` samples reviews for label lines.

Post: 基于Conditional Layer Normalization的条件文本生成 (https://kexue.fm/archives/7124): a condition vector moves
γ and β of every LayerNorm through zero-initialised projections, so a pretrained BERT starts exactly as it was and
learns to write under the condition (there: the sentiment of a review, with BERT-base, top-k sampling).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Sequence

import lightning as L
import torch
from torch import Tensor
from torchmetrics.text import Perplexity

from kexue.generation import GenerationConfig
from kexue.models.bert import Bert
from kexue.models.checkpoints import read_config
from kexue.models.conditional_lm import ConditionalBertLM
from kexue.models.pretrained import cond_lm_tokenizer
from kexue.nn.transformer import TransformerConfig
from kexue.stages import NextTokenStages

DEFAULT_CONFIG = TransformerConfig(dim=256, num_layers=4, num_heads=4, ffn_dim=1024, max_length=64, dropout=0.1,
                                   eps=1e-12)
DEFAULT_GENERATION = GenerationConfig(max_new_tokens=48, do_sample=True, top_k=20, top_p=0.95, seed=0)


class ConditionalLM(NextTokenStages, L.LightningModule):
    """Next-token cross-entropy of label-conditioned reviews (``{"ids", "padding", "labels"}`` batches); ``val/ppl``
    and ``test/ppl`` are per-token perplexities; after each validation epoch ``num_samples`` reviews per label go to
    W&B (a table) and to ``<run>/samples.txt``.

    Args:
        vocab_size, vocabulary: the character vocabulary of a model trained from scratch (linked from the data).
        labels: label names (linked from the data).
        config: the BERT trained from scratch (``condition_dim`` is set from ``condition_dim``); ignored with
            ``checkpoint``.
        checkpoint: a BERT folder (``kexue run pretrain``'s ``bert/``, or any Hugging Face BERT with its MLM head):
            its LayerNorms become the Conditional LayerNorms' bases, their projections start at zero.
        weights: ``False``: the checkpoint's network from random initialisation (the no-pretraining ablation).
        condition_dim: size of the label embedding that conditions every LayerNorm.
        generation: decoding for the samples and ``predict``.
        num_samples: reviews per label sampled after each validation epoch.
        max_length: the longest example in tokens (linked from ``data.max_length``): must fit the model's positions.
        lr, weight_decay: AdamW's.
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("generation", "num_samples")

    def __init__(
        self,
        vocab_size: int = 0,
        vocabulary: list[str] | None = None,
        labels: list[str] = ["neg", "pos"],  # noqa: B006
        config: TransformerConfig = DEFAULT_CONFIG,
        checkpoint: str | None = None,
        weights: bool = True,
        condition_dim: int = 128,
        generation: GenerationConfig = DEFAULT_GENERATION,
        num_samples: int = 2,
        max_length: int = 64,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        if lr < 0 or weight_decay < 0 or num_samples < 0 or condition_dim < 1:
            raise ValueError(f"model.lr, model.weight_decay, model.num_samples must be >= 0 and model.condition_dim "
                             f">= 1, got {lr}, {weight_decay}, {num_samples}, {condition_dim}")
        self.save_hyperparameters()
        self.tokenizer = cond_lm_tokenizer(checkpoint, vocabulary)
        if checkpoint:
            size, pieces = read_config(checkpoint).get("vocab_size"), self.tokenizer.tokenizer.get_vocab_size(False)
            if size != pieces:
                raise ValueError(f"{checkpoint}: vocab.txt has {pieces} pieces but config.json "
                                 f"says vocab_size={size}: the vocabulary is not this checkpoint's")
            bert = Bert.from_pretrained(checkpoint, pooler=False, mlm=True, weights=weights,
                                        condition_dim=condition_dim)
        else:
            if vocabulary is None or vocab_size < 5:
                raise ValueError("model.vocabulary (linked from the data) or model.checkpoint is required")
            config = replace(TransformerConfig.coerce(config), condition_dim=condition_dim)
            bert = Bert(vocab_size, config, pooler=False, mlm=True)
        if max_length > bert.config.max_length:
            raise ValueError(f"data.max_length={max_length} exceeds the model's {bert.config.max_length} positions: "
                             f"lower it{'' if checkpoint else ' or raise model.config.max_length'}")
        self.net = ConditionalBertLM(bert, len(labels))
        generation = generation if isinstance(generation, GenerationConfig) else GenerationConfig(**generation)
        self.generation = replace(generation, eos_id=self.tokenizer.eos_id, pad_id=self.tokenizer.pad_id)
        if self.generation.max_new_tokens >= bert.config.max_length:
            raise ValueError(f"model.generation.max_new_tokens={self.generation.max_new_tokens} does not fit the "
                             f"model's {bert.config.max_length} positions (<bos> takes one)")
        if self.generation.num_beams != 1:
            raise ValueError("model.generation.num_beams must be 1 here (greedy or sampling)")
        unk = self.tokenizer.tokenizer.token_to_id("<unk>" if not checkpoint else "[UNK]")
        self.banned = [i for i in (self.tokenizer.pad_id, self.tokenizer.bos_id, unk) if i is not None]
        self.val_ppl, self.test_ppl = Perplexity(ignore_index=-100), Perplexity(ignore_index=-100)

    def forward(self, ids: Tensor, labels: Tensor) -> Tensor:
        """Next-token logits ``(B, T, V)`` of ``ids`` ``(B, T)`` under ``labels`` ``(B,)``."""
        return self.net(ids, labels)

    def _logits_targets(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ids, padding = batch["ids"], batch["padding"]  # (B, T) each, right-padded
        logits = self.net(ids[:, :-1], batch["labels"])  # (B, T-1, V); causal: right padding is never attended to
        targets = ids[:, 1:].masked_fill(~padding[:, 1:], -100)  # (B, T-1): no loss where there is no next token
        return logits, targets

    def generate(self, labels: Sequence[int]) -> list[str]:
        """One sampled review (text) per label index of ``labels``, with :attr:`generation`."""
        was_training = self.net.training
        self.net.eval()
        out, labels = [], torch.tensor(list(labels), dtype=torch.long, device=self.device)
        try:
            for chunk in labels.split(256):  # a predict line may ask for many reviews
                out += self.net.sample(chunk, self.tokenizer.bos_id, self.tokenizer.eos_id, self.generation,
                                       self.banned)
        finally:
            self.net.train(was_training)
        return [" ".join(self.tokenizer.decode(ids).split()) for ids in out]  # one line each

    def on_validation_epoch_end(self) -> None:
        n = self.hparams.num_samples
        if self.trainer.sanity_checking or not n or not self.trainer.is_global_zero:
            return
        labels = [i for i in range(len(self.hparams.labels)) for _ in range(n)]
        rows = [[self.current_epoch, self.hparams.labels[i], text] for i, text in zip(labels, self.generate(labels))]
        self.write_samples(rows, ["epoch", "label", "sample"])

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        """One ``label<TAB>review[<TAB>review ...]`` line per label line (as many reviews as its count)."""
        flat = [label for label, count in zip(batch["labels"].tolist(), batch["counts"]) for _ in range(count)]
        texts, lines = iter(self.generate(flat)), []
        for name, count in zip(batch["texts"], batch["counts"]):
            lines.append("\t".join([name, *(next(texts) for _ in range(count))]))
        return lines

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


__all__ = ["ConditionalBertLM", "ConditionalLM"]
