"""Spectra classification LightningModule: the residual Conv1D classifier with augmentation and class weights.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505): LAMOST spectra, four
classes, macro-F1 as the competition's metric.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from kexue.nn.conv1d import ResidualConv1dClassifier
from kexue.platform.figures import confusion_matrix_figure, log_figure


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


def spectra_figure(x: Tensor, y: Tensor, labels: Sequence[str], per_class: int = 3) -> Any:
    """A matplotlib figure, one panel per class with up to ``per_class`` of its spectra ``x: (N, L)``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(labels), 1, figsize=(8, 1.4 * len(labels) + 0.6), sharex=True, squeeze=False)
    for c, (ax, name) in enumerate(zip(axes[:, 0], labels)):
        for row in x[y == c][:per_class]:
            ax.plot(row.cpu().numpy(), linewidth=0.7)
        ax.set_ylabel(name, rotation=0, ha="right")
    axes[-1, 0].set_xlabel("position (wavelength bin)")
    return fig


class SpectraClassifier(L.LightningModule):
    """Classify raw spectra; batches are ``(x: (B, L), y: (B,))``, see :class:`ResidualConv1dClassifier`.

    Args:
        labels: class names; None: taken from the datamodule at setup (saved in the checkpoint).
        channels, blocks_per_stage, kernel_sizes, stem_kernel, stem_stride, pool, pool_size, global_pool,
            dropout, normalization: the network (:class:`kexue.nn.ResidualConv1dClassifier`).
        augment_shift, augment_scale, augment_noise: training-time :func:`augment_spectra`.
        class_weight: ``"none"``, ``"balanced"`` (``n / (C * n_c)`` from the training counts, the
            fix for LAMOST's star-heavy classes) or one weight per class.
        label_smoothing: of the cross-entropy.
        lr: peak AdamW learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        warmup: fraction of the steps spent warming up.
    """

    def __init__(
        self,
        labels: list[str] | None = None,
        channels: list[int] = [32, 64, 64],  # noqa: B006
        blocks_per_stage: int = 1,
        kernel_sizes: list[int] = [7, 5, 3],  # noqa: B006
        stem_kernel: int = 0,
        stem_stride: int = 1,
        pool: Literal["max", "avg", "none"] = "max",
        pool_size: int = 2,
        global_pool: Literal["avg", "max", "avgmax"] = "avg",
        dropout: float = 0.0,
        normalization: Literal["zscore", "max", "none"] = "zscore",
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
        if isinstance(class_weight, str) and class_weight not in ("none", "balanced"):
            raise ValueError(f"model.class_weight must be 'none', 'balanced' or a list, got {class_weight!r}")
        self.save_hyperparameters()
        self.net: ResidualConv1dClassifier | None = None
        if labels is not None:
            self._build(labels)

    def _build(self, labels: list[str]) -> None:
        hp = self.hparams
        hp.labels = list(labels)
        C = len(labels)
        self.net = ResidualConv1dClassifier(
            C,
            1,
            hp.channels,
            hp.blocks_per_stage,
            hp.kernel_sizes,
            hp.stem_kernel,
            hp.stem_stride,
            hp.pool,
            hp.pool_size,
            hp.global_pool,
            hp.dropout,
            hp.normalization,
        )
        weight = torch.ones(C)
        if isinstance(hp.class_weight, (list, tuple)):
            if len(hp.class_weight) != C:
                raise ValueError(f"model.class_weight has {len(hp.class_weight)} weights for {C} classes")
            weight = torch.tensor(hp.class_weight, dtype=torch.float32)
        self.register_buffer("class_weight", weight)  # "balanced" is filled in from the data at setup
        metrics = MetricCollection(
            {"acc": MulticlassAccuracy(C, average="micro"), "f1": MulticlassF1Score(C, average="macro")}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(C)

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if data is None:
            return
        data.setup(stage)
        if self.net is None:
            self._build(data.labels)
        elif list(self.hparams.labels) != list(data.labels):
            raise ValueError(f"model.labels {self.hparams.labels} differ from the data's {data.labels}")
        if stage == "fit" and self.hparams.class_weight == "balanced":
            counts = data.class_counts().float()  # (C,)
            self.class_weight.copy_(counts.sum() / (len(counts) * counts.clamp(min=1)))

    def on_fit_start(self) -> None:
        x, y = self.trainer.datamodule.splits["train"]
        log_figure(
            self.trainer, "data/spectra", spectra_figure(torch.as_tensor(x), torch.as_tensor(y), self.hparams.labels)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, C)`` of raw spectra ``x: (B, L)``."""
        return self.net(x)

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
        matrix = self.test_confusion.compute()  # (C, C), synced across ranks
        self.test_confusion.reset()
        log_figure(self.trainer, "test/confusion_matrix", confusion_matrix_figure(matrix, self.hparams.labels))

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        """One ``label<TAB>probability`` line per spectrum (``kexue predict`` prints them)."""
        prob, idx = self(batch[0]).softmax(-1).max(-1)  # (B,), (B,)
        return [f"{self.hparams.labels[i]}\t{p:.4f}" for i, p in zip(idx.tolist(), prob.tolist())]

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        # One cycle (warm-up, then cosine decay to ~0): a good model in a small, fixed epoch budget on CPU.
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total, pct_start=hp.warmup)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
