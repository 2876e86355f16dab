"""Task ``reading_comprehension``: UniLM on one BERT (source = passage + question, target = answer), the target-side
LM loss, beam-search decoding restricted to passage substrings, and the exposure-bias switch.

Posts: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933), 万能的seq2seq
(https://kexue.fm/archives/7115; its reading-comprehension example copies the answer from the passage), and
Seq2Seq中Exposure Bias现象的浅析与对策 (https://kexue.fm/archives/7259; random replacement of teacher-forced inputs).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.metrics.qa import CharF1, ExactMatch
from kexue.models.bert import BertFromConfig
from kexue.nn.components import build_component, component_config
from kexue.nn.masks import seq2seq_mask
from kexue.optim import no_weight_decay_groups, warmup_linear_decay
from kexue.seq2seq import (
    BERT_SPECIALS,
    CharVocab,
    copied_text,
    random_replace,
    unilm_beam_search,
    unilm_loss,
    unilm_step,
)
from kexue.text.vocabulary import check_pieces


class ReadingComprehension(L.LightningModule):
    """UniLM reading comprehension: ``logits = BERT_MLM(ids, segments, mask=seq2seq_mask(segments))`` ``(B, T, V)``,
    loss :func:`kexue.seq2seq.unilm_loss` on the answer positions; ``val/em``, ``val/f1``, ``test/em``,
    ``test/f1`` of beam-searched answers (:class:`kexue.metrics.ExactMatch`, :class:`kexue.metrics.CharF1`).

    Args:
        bert: the network, a :class:`kexue.models.bert.Bert` with its MLM head: by default
            :class:`~kexue.models.BertFromConfig` trained here; ``--config bert_folder`` (or ``--model.bert
            kexue.models.BertFromFolder --model.bert.path FOLDER`` with the folder's tokenizer) fine-tunes a
            pretrained one. Its ``vocab_size`` and ``max_length`` are linked from the data.
        vocabulary: the tokenizer's pieces in id order (linked from the data): special ids and answer text.
        beam_size: beams of the decoder.
        max_answer_length: tokens an answer may have (linked from ``data.max_answer_length``).
        copy_from_passage: only answers that are passage substrings (post 7115's constraint for extractive data).
        exposure_bias: ``random_replace`` replaces teacher-forced answer inputs by random characters with
            probability ``replace_prob`` in training, labels unchanged (post 7259); ``none`` trains as usual.
        replace_prob: that probability.
        lr, weight_decay, warmup: AdamW (no decay on biases and norms), linear warm-up over that fraction of the
            steps then linear decay (:func:`kexue.optim.warmup_linear_decay`).
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("beam_size", "copy_from_passage")

    def __init__(
        self,
        bert: nn.Module = lazy_instance(BertFromConfig),  # noqa: B008 (shown as class_path/init_args)
        vocabulary: list | None = None,  # a bare list: see kexue.text.vocabulary.check_pieces
        beam_size: int = 3,
        max_answer_length: int = 16,
        copy_from_passage: bool = True,
        exposure_bias: Literal["none", "random_replace"] = "none",
        replace_prob: float = 0.1,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup: float = 0.05,
    ) -> None:
        super().__init__()
        vocabulary = check_pieces(vocabulary, "model.vocabulary")
        if beam_size < 1 or max_answer_length < 1:
            raise ValueError(f"model.beam_size and model.max_answer_length must be >= 1, got {beam_size}, "
                             f"{max_answer_length}")
        if not 0 <= replace_prob <= 1 or lr < 0 or weight_decay < 0 or not 0 <= warmup < 1:
            raise ValueError(f"model.replace_prob in [0, 1], lr >= 0, weight_decay >= 0, warmup in [0, 1) needed, "
                             f"got {replace_prob}, {lr}, {weight_decay}, {warmup}")
        if not vocabulary:
            raise UsageError("model.vocabulary is not set: it is linked from the data's tokenizer")
        bert = component_config(bert)  # before save_hyperparameters: see component_config
        self.save_hyperparameters()
        self.bert = build_component(bert)
        self.vocab = CharVocab(tuple(vocabulary))
        specials = {self.vocab.index.get(t) for t in (*BERT_SPECIALS, "[MASK]")} - {None}
        self.first_regular = max(specials) + 1  # random_replace draws from [first_regular, V): no special token
        self.banned = sorted(specials - {self.vocab.sep})
        self.metrics = torch.nn.ModuleDict({f"{s}_{m}": metric() for s in ("val", "test")
                                            for m, metric in (("em", ExactMatch), ("f1", CharF1))})

    def forward(self, ids: Tensor, segments: Tensor, padding: Tensor) -> Tensor:
        """MLM logits ``(B, T, V)`` of packed ``ids``, ``segments``, ``padding`` ``(B, T)`` under UniLM's mask."""
        hidden = self.bert(ids, token_type_ids=segments, padding=padding, mask=seq2seq_mask(segments))  # (B, T, D)
        return self.bert.mlm_logits(hidden)  # (B, T, V)

    def loss(self, ids: Tensor, segments: Tensor, padding: Tensor, labels: Tensor) -> Tensor:
        """:func:`kexue.seq2seq.unilm_loss` of the batch, the MLM head run only where ``labels`` ``(B, T)`` count
        (the answer side: a tenth of the positions, and the head is the widest layer)."""
        hidden = self.bert(ids, token_type_ids=segments, padding=padding, mask=seq2seq_mask(segments))  # (B, T, D)
        keep = labels != -100  # (B, T)
        logits = self.bert.mlm_logits(hidden[keep][None])  # (1, N, V)
        return unilm_loss(logits, labels[keep][None])

    def _check_length(self, ids: Tensor) -> None:
        if ids.shape[1] > self.bert.config.max_length:
            raise UsageError(f"examples of {ids.shape[1]} tokens and the BERT has {self.bert.config.max_length} "
                             f"positions: pass --data.max_length {self.bert.config.max_length} or less")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        ids = batch["ids"]
        self._check_length(ids)
        if self.hparams.exposure_bias == "random_replace":
            where = batch["segments"].bool() & batch["padding"]  # (B, T): the teacher-forced answer inputs
            ids = random_replace(ids, where, self.hparams.replace_prob, self.first_regular, len(self.vocab))
        loss = self.loss(ids, batch["segments"], batch["padding"], batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(ids))
        return loss

    def decode(self, batch: dict[str, Any]) -> list[str]:
        """Beam-searched answer text per row (passage characters as written when copying)."""
        copy = self.hparams.copy_from_passage
        found = unilm_beam_search(unilm_step(self.bert), batch["sources"], self.vocab.sep, self.hparams.beam_size,
                                  self.hparams.max_answer_length, batch["passage_ids"] if copy else None,
                                  self.banned, self.vocab.pad, self.device)
        if copy:
            return [copied_text(p, pid, ids) for (ids, _), p, pid in zip(found, batch["passages"],
                                                                           batch["passage_ids"])]
        return ["".join(self.vocab.pieces[i] if i != self.vocab.index.get("[unused1]") else " " for i in ids)
                for ids, _ in found]

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        self._check_length(batch["ids"])
        loss = self.loss(batch["ids"], batch["segments"], batch["padding"], batch["labels"])
        self.log(f"{stage}/loss", loss, batch_size=len(batch["ids"]), sync_dist=True)
        preds = self.decode(batch)
        for m in ("em", "f1"):
            self.metrics[f"{stage}_{m}"].update(preds, batch["answers"])
            self.log(f"{stage}/{m}", self.metrics[f"{stage}_{m}"], prog_bar=stage == "val",
                     batch_size=len(batch["ids"]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[str]:
        """One JSON line ``{"passage", "question", "answer"}`` per input line (empty lines: empty answer)."""
        keep = [i for i, p in enumerate(batch["passages"]) if p]
        answers = [""] * len(batch["passages"])
        if keep:
            sub = {k: [batch[k][i] for i in keep] for k in ("sources", "passage_ids", "passages")}
            self._check_length(torch.zeros(1, max(map(len, sub["sources"])) + self.hparams.max_answer_length + 1))
            for i, text in zip(keep, self.decode(sub)):
                answers[i] = text
        return [json.dumps({"passage": p, "question": q, "answer": a}, ensure_ascii=False)
                for p, q, a in zip(batch["passages"], batch["questions"], answers)]

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(no_weight_decay_groups(self.named_parameters(), hp.weight_decay), lr=hp.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_linear_decay(optimizer, max(1, int(hp.warmup * total)), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["ReadingComprehension"]
