"""The text-classification family's LightningModule base: an encoder component, a linear head, one score per label.

Shared by :class:`~kexue.lightning_modules.text_classifier.TextClassifier` (one label per text, posts
https://kexue.fm/archives/4293 and /4233) and :class:`~kexue.lightning_modules.multilabel_classifier.
MultilabelClassifier` (any number, https://kexue.fm/archives/7359). Batches come from the family's DataModules
(:mod:`kexue.datamodules.hashed_text`): ``{"ids": (B, T), "labels": targets}``, tokenised by the data's tokenizer
component (predict: ``{"ids", "texts"}``).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from kexue.nn.components import build_component
from kexue.optim.groups import component_param_groups, scaled_param_groups


class EncoderClassifier(L.LightningModule):
    """``encoder`` (``(B, T)`` ids -> ``(B, D)``, with an ``output_dim`` attribute) then ``Linear(D, C)``: ``(B, C)``
    scores, one per label. Subclasses set ``loss_fn`` and implement :meth:`stage_metrics` and :meth:`describe`.

    Args:
        encoder: the text encoder component (e.g. :class:`kexue.nn.MeanEmbeddingEncoder`), or its
            ``{"class_path", "init_args"}`` dict (:func:`component_config`).
        labels: label names in index order (``C = len(labels)``).
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the whole optimizer).
        weight_decay: AdamW weight decay.
    """

    loss_fn: nn.Module

    def __init__(self, encoder: nn.Module | dict, labels: list[str], lr: float, weight_decay: float) -> None:
        super().__init__()
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"model.labels must be at least two distinct names, got {labels}")
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"model.lr and model.weight_decay must be >= 0, got {lr} and {weight_decay}")
        self.encoder = build_component(encoder)
        if not isinstance(getattr(self.encoder, "output_dim", None), int):
            raise ValueError(f"model.encoder {type(self.encoder).__name__} has no integer output_dim")
        self.head = nn.Linear(self.encoder.output_dim, len(labels))
        self.label_names, self.lr, self.weight_decay = list(labels), lr, weight_decay

    def set_metrics(self, metrics: MetricCollection, test_breakdown: Metric) -> None:
        """Keep one copy of ``metrics`` per stage, logged as ``val/<name>`` and ``test/<name>``, and a metric updated
        at test only (a confusion matrix, per-label scores) that the subclass reports in ``on_test_epoch_end``."""
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_breakdown = test_breakdown

    def metric_inputs(self, scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """What the metrics are updated with, from a batch's scores ``(B, C)`` and targets: by default both as is."""
        return scores, target

    def describe(self, scores: Tensor) -> list[str]:
        """One printable prediction per row of scores ``(B, C)``."""
        raise NotImplementedError

    def forward(self, ids: Tensor) -> Tensor:
        """Scores ``(B, C)`` of the texts' token ids ``(B, T)`` (0 = padding)."""
        return self.head(self.encoder(ids))  # (B, C)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss_fn(self(batch["ids"]), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        scores, target = self(batch["ids"]), batch["labels"]  # (B, C), (B,) or (B, C)
        self.log(f"{stage}/loss", self.loss_fn(scores, target), batch_size=len(target), sync_dist=True)
        inputs = self.metric_inputs(scores, target)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(*inputs)
        if stage == "test":
            self.test_breakdown.update(*inputs)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=len(target))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        """One line per input text (:meth:`describe`); a blank text gets an empty line, so outputs stay aligned."""
        lines = self.describe(self(batch["ids"]))
        return [line if text.strip() else "" for line, text in zip(lines, batch["texts"])]

    def parameter_groups(self) -> list[dict]:
        """The encoder's own groups if it has any (a BERT's layer-wise rates and no-decay groups), then the rest
        (:func:`~kexue.optim.groups.component_param_groups`); ``--optimizer`` uses the same groups."""
        return component_param_groups(self, self.encoder)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(scaled_param_groups(self.parameter_groups(), self.lr), lr=self.lr,
                                 weight_decay=self.weight_decay)


__all__ = ["EncoderClassifier"]
