"""Callbacks the fault and scale tests pass to real runs (``--trainer.callbacks+=kexue.tests.helpers.X``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class RecordBatches(Callback):
    """Appends the texts of every training batch to ``seen-rank<R>-epoch<E>.txt`` in the working directory."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        texts = batch[0]
        path = Path(f"seen-rank{trainer.global_rank}-epoch{trainer.current_epoch}.txt")
        with path.open("a", encoding="utf-8") as f:
            f.writelines(f"{t}\n" for t in texts)


class RecordCheckpointIO(Callback):
    """Writes the class name of the strategy's checkpoint IO to ``checkpoint_io.txt``."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        Path("checkpoint_io.txt").write_text(type(trainer.strategy.checkpoint_io).__name__)


class FailInTraining(Callback):
    """Raises a RuntimeError at the end of the first training batch: stands in for a bug in a model's code."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        raise RuntimeError("a bug in the training code")
