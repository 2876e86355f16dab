"""A two-layer MLP classifier: the smallest complete kexue LightningModule."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy


class DigitsMLP(L.LightningModule):
    """``(B, 64)`` pixels -> ``(B, 10)`` logits. Logs ``train/loss``, ``val/acc``, ``test/acc``."""

    def __init__(self, hidden_dim: int = 64, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()  # every __init__ argument becomes a --model.* option and a W&B config key
        self.net = nn.Sequential(nn.Linear(64, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 10))
        self.val_acc, self.test_acc = MulticlassAccuracy(10, average="micro"), MulticlassAccuracy(10, average="micro")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.val_acc(self.net(batch[0]), batch[1])
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.test_acc(self.net(batch[0]), batch[1])
        self.log("test/acc", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        return [str(d) for d in self.net(batch[0]).argmax(-1).tolist()]  # `kexue predict` prints these lines

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
