"""Spectra classification LightningModule: the residual Conv1D classifier with augmentation and class weights.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505): LAMOST spectra, four
classes, macro-F1 as the competition's metric.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from kexue.nn.components import build_component, component_config
from kexue.nn.conv1d import ResidualConv1dEncoder
from kexue.optim.groups import adamw_one_cycle
from kexue.platform.figures import log_confusion_matrix


def augment_spectra(x: Tensor, shift: float = 0.0, scale: float = 0.0, noise: float = 0.0) -> Tensor:
    """Random per-spectrum shift, amplitude scale and additive noise of a batch ``x: (B, L)``.

    ``shift``: largest shift as a fraction of ``L`` (edges repeat the end value, no wrap-around: a
    spectrum's two ends are unrelated). ``scale``: std of the log-normal amplitude factor. ``noise``:
    std of Gaussian noise relative to each spectrum's own std. All zero: ``x`` unchanged.
    """
    B, L = x.shape
    if shift > 0:
        s = max(1, int(shift * L))
        offsets = torch.randint(-s, s + 1, (B, 1), device=x.device)  # (B, 1)
        idx = (torch.arange(L, device=x.device).unsqueeze(0) - offsets).clamp(0, L - 1)  # (B, L)
        x = x.gather(1, idx)
    if scale > 0:
        x = x * torch.exp(scale * torch.randn(B, 1, device=x.device))  # (B, L)
    if noise > 0:
        x = x + noise * x.std(-1, keepdim=True) * torch.randn_like(x)
    return x


class SpectraClassifier(L.LightningModule):
    """Classify raw spectra; batches are ``(x: (B, L), y: (B,))``: encoder -> dropout -> linear head.

    Args:
        labels: class names in index order (linked from ``data.labels``; required; saved in the checkpoint).
        encoder: the network ``(B, L)`` raw spectra -> ``(B, D)`` with an ``output_dim`` attribute ``D``
            (default :class:`kexue.nn.conv1d.ResidualConv1dEncoder`, the post's residual Conv1D).
        class_counts: training examples per class (linked from ``data.class_counts``); used by ``"balanced"``.
        dropout: dropout before the head.
        augment_shift, augment_scale, augment_noise: training-time :func:`augment_spectra`.
        class_weight: ``"none"``, ``"balanced"`` (``n / (C * n_c)`` from ``class_counts``, the fix for LAMOST's
            star-heavy classes) or one weight per class.
        label_smoothing: of the cross-entropy.
        lr: peak AdamW learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        warmup: fraction of the steps spent warming up.
    """

    def __init__(
        self,
        labels: list[str] | None = None,
        encoder: nn.Module = lazy_instance(  # noqa: B008 (pool_size 4: long spectra, 4x shorter per stage)
            ResidualConv1dEncoder, channels=[32, 64, 64], kernel_sizes=[7, 5, 3], pool="max", pool_size=4,
            global_pool="avg", normalization="zscore",
        ),
        class_counts: list[int] | None = None,
        dropout: float = 0.0,
        augment_shift: float = 0.1,
        augment_scale: float = 0.1,
        augment_noise: float = 0.02,
        class_weight: Literal["none", "balanced"] | list[float] = "none",
        label_smoothing: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        warmup: float = 0.1,
    ) -> None:
        super().__init__()
        if labels is None:  # optional only so that a checkpoint can supply it on predict
            raise ValueError("model.labels is required (the CLI links it from data.labels)")
        C = len(labels)
        if C < 2:
            raise ValueError(f"model.labels must name at least 2 classes, got {labels}")
        encoder = component_config(encoder)  # before save_hyperparameters: one new encoder per model, seeded
        self.save_hyperparameters()
        self.encoder = build_component(encoder)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_dim, C)
        self.register_buffer("class_weight", self._class_weight(class_weight, class_counts, C))
        metrics = MetricCollection(
            {"acc": MulticlassAccuracy(C, average="micro"), "f1": MulticlassF1Score(C, average="macro")}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(C)

    @staticmethod
    def _class_weight(class_weight: str | list[float], counts: list[int] | None, C: int) -> Tensor:
        """``(C,)`` cross-entropy weights: ones, ``n / (C * n_c)`` (``"balanced"``) or the given list."""
        if isinstance(class_weight, str):
            if class_weight == "none":
                return torch.ones(C)
            if class_weight != "balanced":
                raise ValueError(f"model.class_weight must be 'none', 'balanced' or a list, got {class_weight!r}")
            if counts is None or len(counts) != C:
                raise ValueError(f"model.class_weight balanced needs model.class_counts for {C} classes "
                                 f"(linked from the data), got {counts}")
            n = torch.tensor(counts, dtype=torch.float32)  # (C,)
            return n.sum() / (C * n.clamp(min=1))
        if len(class_weight) != C:
            raise ValueError(f"model.class_weight has {len(class_weight)} weights for {C} classes")
        return torch.tensor(class_weight, dtype=torch.float32)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, C)`` of raw spectra ``x: (B, L)``."""
        return self.head(self.dropout(self.encoder(x)))  # (B, C)

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        hp = self.hparams
        loss = self._loss(self(augment_spectra(x, hp.augment_shift, hp.augment_scale, hp.augment_noise)), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", self._loss(logits, y), batch_size=len(y), sync_dist=True)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, y)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=len(y))
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.test_confusion.update(self._evaluate(batch, "test"), batch[1])

    def on_test_epoch_end(self) -> None:
        log_confusion_matrix(self.trainer, "test/confusion_matrix", self.test_confusion, self.hparams.labels)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        """One ``label<TAB>probability`` line per spectrum (``kexue predict`` prints them)."""
        prob, idx = self(batch[0]).softmax(-1).max(-1)  # (B,), (B,)
        return [f"{self.hparams.labels[i]}\t{p:.4f}" for i, p in zip(idx.tolist(), prob.tolist())]

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        return adamw_one_cycle(self.parameters(), hp.lr, hp.weight_decay, hp.warmup,
                               int(self.trainer.estimated_stepping_batches))
