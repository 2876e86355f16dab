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
from jsonargparse import lazy_instance
from torch import Tensor, nn
from torchmetrics.text import Perplexity

from kexue.errors import UsageError
from kexue.generation import SAMPLING, GenerationConfig
from kexue.models.bert import BertFromConfig
from kexue.models.conditional_lm import ConditionalBertLM
from kexue.models.tokenizers import decode_pieces
from kexue.nn.components import build_component, component_config
from kexue.seq2seq import CharVocab
from kexue.stages import NextTokenStages
from kexue.text.vocabulary import check_pieces

DEFAULT_GENERATION = replace(SAMPLING, max_new_tokens=48)  # kexue.generation.SAMPLING: the one default


class ConditionalLM(NextTokenStages, L.LightningModule):
    """Next-token cross-entropy of label-conditioned reviews (``{"ids", "padding", "labels"}`` batches); ``val/ppl``
    and ``test/ppl`` are per-token perplexities; after each validation epoch ``num_samples`` reviews per label go to
    W&B (a table) and to ``<run>/samples.txt``.

    Args:
        bert: the network, a :class:`kexue.models.bert.Bert` with an MLM head and ``condition_dim`` (the size of
            the label embedding that conditions every LayerNorm): by default :class:`~kexue.models.BertFromConfig`
            (4 x 256) trained here; ``--config cond_lm_bert_folder`` (:class:`~kexue.models.BertFromFolder`)
            fine-tunes a pretrained one, whose LayerNorms become the Conditional LayerNorms' bases with projections
            starting at zero. Its ``vocab_size`` and ``max_length`` are linked from the data.
        vocabulary: the tokenizer's pieces in id order (linked from the data): ``[CLS]``/``[SEP]`` are ``<bos>``/
            ``<eos>``, and sampled ids become text through them.
        labels: label names (linked from the data).
        generation: decoding for the samples and ``predict``: by default :data:`kexue.generation.SAMPLING` with
            48 new tokens; ``do_sample false`` is greedy, the argmax. One review per draw: a predict line's count
            asks for several (``num_return`` is refused).
        num_samples: reviews per label sampled after each validation epoch.
        lr, weight_decay: AdamW's.
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("generation", "num_samples")

    def __init__(
        self,
        bert: nn.Module = lazy_instance(BertFromConfig, attention_dropout=0.0, condition_dim=128),  # noqa: B008
        vocabulary: list | None = None,  # a bare list: see kexue.text.vocabulary.check_pieces
        labels: list[str] = ["neg", "pos"],  # noqa: B006
        generation: GenerationConfig = DEFAULT_GENERATION,
        num_samples: int = 2,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        vocabulary = check_pieces(vocabulary, "model.vocabulary")
        if lr < 0 or weight_decay < 0 or num_samples < 0:
            raise ValueError(f"model.lr, model.weight_decay, model.num_samples must be >= 0, got {lr}, "
                             f"{weight_decay}, {num_samples}")
        if not vocabulary:
            raise UsageError("model.vocabulary is not set: it is linked from the data's tokenizer")
        bert = component_config(bert)  # before save_hyperparameters: see component_config
        self.save_hyperparameters()
        bert = build_component(bert)
        if getattr(getattr(bert, "config", None), "condition_dim", None) is None:
            raise UsageError("model.bert needs a condition_dim (the label embedding's size), e.g. "
                             "--model.bert.condition_dim 128")
        self.net = ConditionalBertLM(bert, len(labels))
        self.vocab = CharVocab(tuple(vocabulary))
        generation = generation if isinstance(generation, GenerationConfig) else GenerationConfig(**generation)
        self.generation = replace(generation, eos_id=self.vocab.sep, pad_id=self.vocab.pad)
        if self.generation.max_new_tokens >= bert.config.max_length:
            raise ValueError(f"model.generation.max_new_tokens={self.generation.max_new_tokens} does not fit the "
                             f"model's {bert.config.max_length} positions (<bos> takes one)")
        if self.generation.num_beams != 1:
            raise ValueError("model.generation.num_beams must be 1 here (greedy or sampling)")
        if self.generation.num_return != 1:
            raise UsageError(f"model.generation.num_return={self.generation.num_return}: cond_lm draws one review "
                             "per request; ask for several with a count on the predict line (`pos\t5`)")
        specials = (self.vocab.pad, self.vocab.cls, self.vocab.unk, self.vocab.index.get("[MASK]"))
        self.banned = [i for i in specials if i is not None]
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
                out += self.net.sample(chunk, self.vocab.cls, self.vocab.sep, self.generation, self.banned)
        finally:
            self.net.train(was_training)
        return [" ".join(decode_pieces(self.vocab.pieces, ids).split()) for ids in out]  # one line each

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
