"""Callbacks the fault and scale tests pass to real runs (``--trainer.callbacks+=kexue.tests.helpers.X``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class RecordBatches(Callback):
    """Appends each example of every training batch, as its non-padding feature ids joined by ``,``, to
    ``seen-rank<R>-epoch<E>.txt`` in the working directory (batches reach the model as tensors, not texts)."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        path = Path(f"seen-rank{trainer.global_rank}-epoch{trainer.current_epoch}.txt")
        with path.open("a", encoding="utf-8") as f:
            f.writelines(",".join(str(i) for i in row if i) + "\n" for row in batch["ids"].tolist())


class RecordCheckpointIO(Callback):
    """Writes the class name of the strategy's checkpoint IO to ``checkpoint_io.txt``."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        Path("checkpoint_io.txt").write_text(type(trainer.strategy.checkpoint_io).__name__)


class FailInTraining(Callback):
    """Raises a RuntimeError at the end of the first training batch: stands in for a bug in a model's code."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        raise RuntimeError("a bug in the training code")


class RecordOutputDtypes(Callback):
    """Writes the dtypes of every submodule output seen in the first training step to ``dtypes.txt``: under
    ``bf16-mixed`` autocast, matmul-based layers must produce ``torch.bfloat16``."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self.seen: set[str] = set()
        self.handles = [m.register_forward_hook(self._record) for m in pl_module.modules()]

    def _record(self, module: Any, args: Any, output: Any) -> None:
        for value in output if isinstance(output, (tuple, list)) else [output]:
            if hasattr(value, "dtype"):
                self.seen.add(str(value.dtype))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        for handle in self.handles:
            handle.remove()
        Path("dtypes.txt").write_text(" ".join(sorted(self.seen)))


class RecordSetup(Callback):
    """Writes what a run was built with to ``setup.txt``: the optimizer's class, each param group's lr, and the
    callbacks' class names (to show that presets took effect, not only that the run ended well)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        lrs = ",".join(f"{group['lr']:g}" for group in optimizer.param_groups)
        names = " ".join(type(c).__name__ for c in trainer.callbacks)
        Path("setup.txt").write_text(f"{type(optimizer).__name__}\n{lrs}\n{names}\n")
