"""Task ``relation_extraction``: the "half pointer, half tagging" triple extractor of 用bert4keras做三元组抽取
(https://kexue.fm/archives/7161).

An encoder gives each character a vector. A subject head marks subject starts and ends (two sigmoids per
character). One subject's start and end vectors are fed back through a Conditional Layer Normalization
(基于Conditional Layer Normalization的条件文本生成, https://kexue.fm/archives/7124), and an object head marks, for
every predicate, the starts and ends of that subject's objects. Probabilities are sharpened as in the post
(``sigmoid ** 2`` for subjects, ``** 4`` for objects) before the cross-entropy and the thresholds (0.6 for a start,
0.5 for an end); decoding pairs each start with the nearest end at or after it, for every subject found.

The encoder is a component: the DGCNN of Su's non-BERT kg-2019 model by default, any
:class:`kexue.nn.CharTokenEncoder`, or a BERT folder (the post's model): ``--model.encoder
kexue.models.BertCharEncoder --model.encoder.checkpoint FOLDER --data.tokenizer kexue.text.tokenizers.BertChars
--data.tokenizer.checkpoint FOLDER`` (``--config bert`` sets both but the folder; ``--model.encoder.weights false``:
the same network from random initialisation).
"""

from __future__ import annotations

import json
from typing import ClassVar

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.data.duie import Triple
from kexue.losses import powered_sigmoid_bce
from kexue.metrics import TripleF1
from kexue.nn.components import build_component, component_config
from kexue.nn.encoders import CharDGCNNEncoder
from kexue.nn.normalization import ConditionalLayerNorm
from kexue.optim.groups import component_param_groups, scaled_param_groups
from kexue.stages import CountF1Stages

Batch = dict  # see kexue.datamodules.relation_extraction.RelationExtractionDataModule


def pair_pointers(starts: list[tuple[int, ...]], ends: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
    """The post's pairing: each start ``(t, k)`` (position, class), in order, with the first end ``(t', k)`` of the
    same class and ``t' >= t`` -> ``(t, t', k)``. Both lists sorted by position (``nonzero`` order). A start without
    such an end gives nothing."""
    spans = []
    for t, *k in starts:
        end = next((u for u, *c in ends if u >= t and c == k), None)
        if end is not None:
            spans.append((t, end, k[0] if k else 0))
    return spans


class RelationExtractor(CountF1Stages, L.LightningModule):
    """Subject pointers, then per-predicate object pointers conditioned on a subject (https://kexue.fm/archives/7161).

    Args:
        encoder: ``ids (B, T, G)``, ``mask (B, T)`` -> ``(B, T, encoder.output_dim)``, e.g.
            :class:`kexue.nn.CharDGCNNEncoder` (default), ``CharConvEncoder``, ``CharRecurrentEncoder``,
            ``CharTransformerEncoder``, :class:`kexue.models.BertCharEncoder` over a BERT folder
            (``num_embeddings`` / ``num_features`` linked from the data's tokenizer).
        predicates: predicate names in id order (linked from the data).
        subject_power: subject probabilities are ``sigmoid ** subject_power`` (the post: 2).
        object_power: object probabilities are ``sigmoid ** object_power`` (the post: 4).
        start_threshold: a start is marked where its probability exceeds this (the post: 0.6).
        end_threshold: likewise for an end (the post: 0.5). Both are decoding knobs (``runtime_arguments``):
            at ``validate`` / ``test`` / ``predict`` the user's value wins over the checkpoint's.
        condition_hidden_dim: the Conditional LayerNorm projects the ``2 D`` subject vector to this size first
            (``None``: directly, as the post).
        lr: AdamW learning rate (the post fine-tunes BERT at 1e-5; a model from scratch wants ~1e-3); a BERT
            encoder's groups scale it layer by layer.
        weight_decay: AdamW weight decay.
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("start_threshold", "end_threshold")  # not from a checkpoint

    def __init__(
        self,
        encoder: nn.Module = lazy_instance(CharDGCNNEncoder),  # noqa: B008 (shown as class_path/init_args)
        predicates: list[str] = [],  # noqa: B006 (linked from the data)
        subject_power: float = 2.0,
        object_power: float = 4.0,
        start_threshold: float = 0.6,
        end_threshold: float = 0.5,
        condition_hidden_dim: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        encoder = component_config(encoder)  # before save_hyperparameters: the default is one shared object
        self.save_hyperparameters()
        if not predicates:
            raise ValueError("model.predicates is empty (it is linked from the data's predicate list)")
        if min(subject_power, object_power) <= 0 or not (0 < start_threshold < 1 and 0 < end_threshold < 1):
            raise ValueError(f"model.subject_power/object_power must be > 0 and the thresholds in (0, 1), got "
                             f"{subject_power}, {object_power}, {start_threshold}, {end_threshold}")
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"model.lr and model.weight_decay must be >= 0, got {lr}, {weight_decay}")
        self.encoder = build_component(encoder)
        dim = self.encoder.output_dim
        P = len(predicates)
        self.subject = nn.Linear(dim, 2)
        self.norm = ConditionalLayerNorm(dim, 2 * dim, condition_hidden_dim)
        self.object = nn.Linear(dim, 2 * P)
        self.val_f1, self.test_f1 = TripleF1(), TripleF1()

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Character vectors ``(B, T, D)`` and subject logits ``(B, T, 2)`` (start, end) of ``ids`` ``(B, T, G)``
        (the data's tokenizer's ids per character) and the character ``mask (B, T)``."""
        h = self.encoder(ids, mask)  # (B, T, D)
        return h, self.subject(h)

    def object_logits(self, h: Tensor, subjects: Tensor, rows: Tensor | None = None) -> Tensor:
        """Object logits ``(N, T, P, 2)`` for ``N`` subjects ``(N, 2)`` (start, end positions) of the sentences
        ``rows (N,)`` of ``h (B, T, D)`` (default: subject ``i`` belongs to sentence ``i``)."""
        h = h if rows is None else h[rows]  # (N, T, D)
        n = torch.arange(len(h), device=h.device)
        condition = torch.cat([h[n, subjects[:, 0]], h[n, subjects[:, 1]]], -1)  # (N, 2D)
        return self.object(self.norm(h, condition)).unflatten(-1, (-1, 2))  # (N, T, P, 2)

    def loss(self, batch: Batch) -> Tensor:
        """The post's loss: per-character BCE of the sharpened subject pointers (mean over start/end) plus that of
        the object pointers (mean over start/end, summed over predicates), each averaged over real characters."""
        mask = batch["mask"].float()  # (B, T)
        h, subject_logits = self(batch["ids"], batch["mask"])
        hp = self.hparams
        subject = powered_sigmoid_bce(subject_logits, batch["subject_labels"], hp.subject_power).mean(-1)  # (B, T)
        objects = self.object_logits(h, batch["subject_ids"])
        obj = powered_sigmoid_bce(objects, batch["object_labels"], hp.object_power).mean(-1).sum(-1)  # (B, T)
        return ((subject + obj) * mask).sum() / mask.sum().clamp(min=1)

    @torch.no_grad()
    def extract(self, ids: Tensor, mask: Tensor, texts: list[str]) -> list[set[Triple]]:
        """The triples of each sentence: subjects from the subject pointers, then each subject's objects and
        predicates, as strings of ``texts`` (the characters the model saw)."""
        hp, names = self.hparams, self.hparams.predicates
        h, subject_logits = self(ids, mask)
        p = torch.sigmoid(subject_logits.float()) ** hp.subject_power  # (B, T, 2)
        starts = ((p[..., 0] > hp.start_threshold) & mask).nonzero().tolist()  # [(b, t)]
        ends = ((p[..., 1] > hp.end_threshold) & mask).nonzero().tolist()
        per_row: list[tuple[list, list]] = [([], []) for _ in texts]  # each sentence's (starts, ends)
        for rows, k in ((starts, 0), (ends, 1)):
            for b, t in rows:
                per_row[b][k].append((t,))
        subjects = [(b, s, e) for b, (st, en) in enumerate(per_row) for s, e, _ in pair_pointers(st, en)]
        found: list[set[Triple]] = [set() for _ in texts]
        if not subjects:
            return found
        pairs = torch.tensor(subjects, device=h.device)  # (N, 3)
        for chunk in pairs.split(256):  # bounded memory for sentences with many subjects
            q = torch.sigmoid(self.object_logits(h, chunk[:, 1:], chunk[:, 0]).float()) ** hp.object_power
            keep = mask[chunk[:, 0]][..., None]  # (n, T, 1)
            for (b, s, e), qs, qe in zip(chunk.tolist(), (q[..., 0] > hp.start_threshold) & keep,
                                         (q[..., 1] > hp.end_threshold) & keep):
                for os, oe, k in pair_pointers(qs.nonzero().tolist(), qe.nonzero().tolist()):
                    found[b].add((texts[b][s : e + 1], names[k], texts[b][os : oe + 1]))
        return found

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["texts"]))
        return loss

    def _evaluate(self, batch: Batch, stage: str, metric: TripleF1) -> None:
        self.log(f"{stage}/loss", self.loss(batch), batch_size=len(batch["texts"]), sync_dist=True)
        metric.update(self.extract(batch["ids"], batch["mask"], batch["texts"]), batch["triples"], batch["index"])

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """One JSON line per sentence: ``{"text", "spo_list": [{"subject", "predicate", "object"}, ...]}`` (the
        LIC2019 layout, sorted), the text as given (a sentence longer than ``--data.max_length`` is read up to it)."""
        lines = []
        found = self.extract(batch["ids"], batch["mask"], batch["texts"])
        for text, triples in zip(batch.get("lines", batch["texts"]), found):
            spo = [{"subject": s, "predicate": p, "object": o} for s, p, o in sorted(triples)]
            lines.append(json.dumps({"text": text, "spo_list": spo}, ensure_ascii=False))
        return lines

    def parameter_groups(self) -> list[dict]:
        """The encoder's own groups if it has any (a BERT's layer-wise rates and no-decay groups), then the rest."""
        return component_param_groups(self, self.encoder)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.AdamW(scaled_param_groups(self.parameter_groups(), hp.lr), lr=hp.lr,
                                 weight_decay=hp.weight_decay)


__all__ = ["RelationExtractor", "pair_pointers"]
