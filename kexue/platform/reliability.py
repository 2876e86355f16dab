"""Callbacks that keep a run's work safe: stop on a non-finite loss, checkpoint on Ctrl-C/SIGTERM, make a
resumed run replay exactly, and refuse checkpoints from another task.

:mod:`kexue.platform.lightning_cli` adds them to every task (``--checkpoint_every_n_steps``, ``--stop_on_nan``), so
plugins get them without code. Checkpoints are written by :class:`AtomicCheckpointIO`: a temporary file in
the target's own directory, renamed over the target only once complete.
"""

from __future__ import annotations

import io
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from kexue.errors import UsageError


class NonFiniteLossError(UsageError):
    """Training produced a NaN/inf loss or gradient; carries the step (a one-line CLI error, exit 2)."""


class StopOnNonFiniteLoss(Callback):
    """Stop training with a clear message at the first step whose loss or gradients are not finite.

    The check runs before the optimizer step, so the weights (and every checkpoint saved so far) stay
    finite. Under ``16-mixed`` precision, inf gradients are the GradScaler's business (it skips those
    steps), so only the loss is checked there.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss.detach()).all():
            self._stop(trainer, f"loss is {loss.detach().float().mean().item()}")

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return
        # Sparse embeddings (word2vec): their raw, uncoalesced values; a non-finite one makes its summed row
        # non-finite too. aminmax propagates NaN and inf in one pass (`isfinite(g).all()` was ~20x slower and
        # took a third of word2vec's step time), and one check for all parameters is one device sync, not one each.
        names, extremes = [], []
        for name, param in pl_module.named_parameters():
            grad = param.grad
            values = None if grad is None else grad._values() if grad.is_sparse else grad
            if values is not None and values.numel():
                names.append(name)
                extremes.append(torch.stack(torch.aminmax(values.detach())).float())
        if not extremes:
            return
        finite = torch.isfinite(torch.stack(extremes)).all(1)  # (P,)
        if not finite.all():
            self._stop(trainer, f"the gradient of {names[int((~finite).nonzero()[0])]} is not finite")

    @staticmethod
    def _stop(trainer: Trainer, what: str) -> None:
        paths = [
            getattr(c, "last_model_path", "") or getattr(c, "best_model_path", "") for c in trainer.checkpoint_callbacks
        ]
        kept = next((p for p in paths if p), None)
        where = f"last good checkpoint: {kept}" if kept else "no checkpoint was saved before it"
        raise NonFiniteLossError(
            f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}): {what}; {where}"
        )


class CheckpointOnInterrupt(Callback):
    """Saves ``interrupted.ckpt`` next to the run's other checkpoints on Ctrl-C or SIGTERM (Lightning turns
    SIGTERM into ``SIGTERMException``).

    Not Lightning's ``OnExceptionCheckpoint``: with one of those present, Lightning turns ``fit(ckpt_path=None)``
    into ``"last"`` and a new run silently resumes an old one; a kexue run resumes only when asked. Not on a
    non-finite loss either: those weights are not worth resuming from.
    """

    def __init__(self, filename: str = "interrupted") -> None:
        self.filename, self.dirpath = filename, Path(".")
        self._ctrl_c, self._previous_handler = False, None

    @property
    def ckpt_path(self) -> str:
        return str(self.dirpath / f"{self.filename}.ckpt")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        main = trainer.checkpoint_callback
        self.dirpath = Path(main.dirpath) if main is not None and main.dirpath else Path(trainer.default_root_dir)
        # A KeyboardInterrupt raised at an arbitrary bytecode can be swallowed (e.g. inside a __del__ or a
        # C callback) and the run goes on; so the first Ctrl-C only asks, and the next batch end stops.
        # A second Ctrl-C stops at once.
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_ctrl_c)

    def _on_ctrl_c(self, signum: int, frame: Any) -> None:
        if self._ctrl_c:
            raise KeyboardInterrupt
        self._ctrl_c = True

    def _stop_if_asked(self, *args: Any) -> None:
        if self._ctrl_c:
            raise KeyboardInterrupt

    on_train_batch_end = on_validation_batch_end = _stop_if_asked

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SystemExit)) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.ckpt_path)
            print(f"checkpoint saved on interrupt: {self.ckpt_path}", flush=True)


class ResumableState(Callback):
    """Stores the task name and the RNG states in every checkpoint and restores the RNG on resume.

    With an epoch-seeded sampler (:class:`kexue.data.EpochSeededSampler`) this makes a run resumed from an
    epoch-end checkpoint replay the uninterrupted run exactly (dropout draws included). A checkpoint written
    by another task is refused with one line instead of a state-dict traceback.
    """

    def __init__(self, task: str) -> None:
        self.task = task

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["kexue"] = {"task": self.task, "rng": rng_states()}

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("kexue", {})
        check_checkpoint_task(saved.get("task"), self.task, "checkpoint")
        if saved.get("rng") and trainer.state.fn == "fit":
            set_rng_states(saved["rng"])


def check_checkpoint_task(written_by: str | None, task: str, path: str) -> None:
    """UsageError when a checkpoint written by one task is given to another."""
    if written_by is not None and written_by != task:
        raise UsageError(f"checkpoint was written by task '{written_by}', not '{task}'", path)


def rng_states() -> dict[str, Any]:
    """torch, numpy and Python RNG states as tensors, ints and lists (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO for local paths, made atomic against a kill at any moment.

    Lightning writes through an fsspec transaction whose temporary file lives in the system temp dir; when
    that is another filesystem than the run's, the final move is a copy over the target, and a kill during
    the copy truncates the only checkpoint. Here the temporary file sits next to the target, is fsynced,
    and ``os.replace`` (atomic on POSIX and Windows) swaps it in. Remote URLs go to Lightning's code.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as f:
                _write(f, buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def _write(f: Any, data: memoryview) -> None:
    """The one write of a checkpoint's bytes (a seam for the kill-during-write test)."""
    f.write(data)


class LastCheckpoint(ModelCheckpoint):
    """Keeps ``last.ckpt`` current: every ``every_n_steps`` optimizer steps and after each validation, so a
    kill loses at most the steps since the last save. Keeps no other file (the task's own ModelCheckpoint
    keeps the best). Lightning's triggers are either step- or epoch-based, hence the one override, which
    uses ModelCheckpoint's (private, tested) save helpers.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        super().__init__(save_top_k=0, save_last=True, every_n_train_steps=every_n_steps or None)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


__all__ = [
    "AtomicCheckpointIO",
    "CheckpointOnInterrupt",
    "NonFiniteLossError",
    "ResumableState",
    "StopOnNonFiniteLoss",
    "check_checkpoint_task",
    "rng_states",
    "set_rng_states",
    "LastCheckpoint",
]
