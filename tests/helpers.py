"""Callbacks the fault and scale tests pass to real runs (``--trainer.callbacks+=kexue.tests.helpers.X``), and
:func:`run_in_process_group` for tests of code that talks to ``torch.distributed`` itself."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable

import torch.distributed as dist
import torch.multiprocessing as mp
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


def run_in_process_group(fn: Callable[[int], Any], world: int = 2, timeout: float = 100) -> dict[int, Any]:
    """``{rank: fn(rank)}`` from ``world`` spawned CPU processes in one gloo group (what DDP sets up). ``fn`` must be
    a module-level function and return picklable values other than tensors (a tensor crosses by file descriptor,
    gone once its process exits: return numpy or lists)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [ctx.Process(target=_group_member, args=(fn, rank, world, port, out)) for rank in range(world)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"process {p.pid} exited with {p.exitcode}"
    return results


def _group_member(fn: Callable[[int], Any], rank: int, world: int, port: int, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out.put((rank, fn(rank)))
    finally:
        dist.destroy_process_group()
