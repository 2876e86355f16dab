"""The Lightning side of ``kexue fit|validate|test|predict|run TASK``: a LightningCLI per task.

Kept apart from :mod:`kexue.platform.cli` so that ``kexue tasks`` never imports torch or Lightning.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from kexue.errors import UsageError
from kexue.platform.loggers import fresh_run_dir
from kexue.platform.reliability import (
    AtomicCheckpointIO,
    CheckpointOnInterrupt,
    LastCheckpoint,
    ResumableState,
    StopOnNonFiniteLoss,
    check_checkpoint_task,
)
from kexue.registry import Task

DEFAULT_LOGGER = {"class_path": "kexue.platform.loggers.WandbLogger", "init_args": {"save_dir": "runs"}}


class LoggedSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run dir and logs it to every logger (W&B)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = self.config.clone().as_dict()
        config.pop("config", None)  # the list of --config files, not a setting
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class KexueCLI(LightningCLI):
    """LightningCLI for one registered task; the command (fit, test...) is run by :func:`run_task`.

    Every Trainer argument is exposed as ``--trainer.*``; ``--ckpt_path`` is added for all commands.
    """

    def __init__(self, task: Task, command: str, args: list[str]) -> None:
        self.task, self.command = task, command
        config = task.config_path()
        super().__init__(
            model_class=task.module_class(),
            datamodule_class=task.datamodule_class(),
            save_config_callback=LoggedSaveConfigCallback,
            trainer_defaults={"logger": DEFAULT_LOGGER, "default_root_dir": f"runs/{task.name}"},
            parser_kwargs={
                "prog": f"kexue {command} {task.name}",
                "default_config_files": [str(config)] if config else [],
                "exit_on_error": False,
            },
            args=args,
            run=False,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="Checkpoint to resume `fit` from or to evaluate; `last` = the newest last.ckpt of "
                                 "this task under runs/.")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=100,
                            help="Save last.ckpt every N optimizer steps and after each validation (0: only "
                                 "then); a kill loses at most the steps since then.")
        parser.add_argument("--stop_on_nan", type=bool, default=True,
                            help="Stop with a one-line error at the first non-finite loss or gradient.")
        for source, target in self.task.links:
            parser.link_arguments(source, target)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            raise UsageError(f"{_one_line(err)}{_suggestion(str(err), parser)} "
                             f"(see `kexue {self.command} {self.task.name} --help`)") from err

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        if cfg.ckpt_path == "last":
            cfg.ckpt_path = self._newest_last_checkpoint(cfg.trainer.default_root_dir)
        if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file() and cfg.ckpt_path != "best":
            raise UsageError("checkpoint not found", cfg.ckpt_path)
        if cfg.ckpt_path and Path(cfg.ckpt_path).is_file():
            checkpoint = self._read_checkpoint(cfg.ckpt_path)
            if self.command != "fit":
                self._model_config_from_checkpoint(checkpoint)
        if cfg.checkpoint_every_n_steps < 0:
            raise UsageError(f"--checkpoint_every_n_steps must be >= 0, got {cfg.checkpoint_every_n_steps}")
        self._name_loggers()

    def _newest_last_checkpoint(self, root: str) -> str:
        found = sorted(Path(root).glob("**/last*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise UsageError(f"--ckpt_path last: no last.ckpt of task '{self.task.name}' under {root}/")
        return str(found[-1])

    def _read_checkpoint(self, path: str) -> dict:
        """The checkpoint as a dict, loaded with ``weights_only=True`` (never runs pickled code)."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated zip, not a checkpoint, unsafe pickle: all one message
            raise UsageError(f"cannot read checkpoint (truncated, corrupt or unsafe?): {_one_line(err)[:160]}",
                             path) from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise UsageError("not a Lightning checkpoint (no state_dict)", path)
        check_checkpoint_task(checkpoint.get("kexue", {}).get("task"), self.task.name, path)
        return checkpoint

    def _model_config_from_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint fixes the architecture: take the model's hyperparameters from it."""
        hparams = checkpoint.get("hyper_parameters", {})
        for key, value in hparams.items():
            if key in self.config.model:
                self.config.model[key] = value

    def _name_loggers(self) -> None:
        trainer = self.config.trainer
        if self.command == "predict":  # stdout carries the predictions; keep the bar out of it
            trainer.enable_progress_bar = False
        if trainer.logger in (False, None) and trainer.default_root_dir == f"runs/{self.task.name}":
            # No logger to version the run: give it a fresh directory so config.yaml never collides.
            trainer.default_root_dir = fresh_run_dir(trainer.default_root_dir)
        loggers = trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(logger, "init_args", None)
            if init is None:
                continue
            if logger.class_path.endswith("WandbLogger"):
                init.group = init.get("group") or self.task.name
                init.job_type = init.get("job_type") or self.command
                init.tags = init.get("tags") or [self.task.name]
                if init.get("save_dir") == "runs":
                    init.save_dir = f"runs/{self.task.name}"
            elif "name" in init and init.name is None:
                init.name = self.task.name

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            raise UsageError(f"bad configuration: {_one_line(err)}") from err

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        """``--optimizer`` gets the model's ``parameter_groups()`` when it has them (e.g. the CRF transitions'
        larger learning rate), with each group's ``lr_multiplier`` applied to the chosen learning rate."""
        if self._get(self.config_init, "lr_scheduler") and not self._get(self.config_init, "optimizer"):
            # LightningCLI would silently ignore it: the model's own configure_optimizers knows nothing of it.
            raise UsageError("--lr_scheduler needs --optimizer (or an optimizer preset, e.g. --config adafactor)")
        groups = getattr(self.model, "parameter_groups", None)
        groups = groups() if callable(groups) else None
        if groups is not None:  # LightningCLI builds --optimizer from model.parameters(): hand it the groups
            self.model.parameters = lambda recurse=True: groups
        try:
            super()._add_configure_optimizers_method_to_model(subcommand)
        except (ValueError, TypeError) as err:
            raise UsageError(f"bad optimizer configuration: {_one_line(err)}") from err
        finally:
            if groups is not None:
                del self.model.parameters
        configure = getattr(self.model.configure_optimizers, "__func__", None)
        built = getattr(configure, "keywords", {})  # the partial LightningCLI installs, if --optimizer was given
        if "optimizer" in built:
            from kexue.optim import apply_lr_multipliers

            apply_lr_multipliers(built["optimizer"], built.get("lr_scheduler"))

    @staticmethod
    def configure_optimizers(lightning_module: LightningModule, optimizer: Any, lr_scheduler: Any = None) -> Any:
        """As LightningCLI's, but a scheduler with ``interval = "step"`` (kexue.optim.PiecewiseLinearLR) steps
        every optimizer step instead of every epoch."""
        if lr_scheduler is not None and getattr(lr_scheduler, "interval", None) == "step":
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"}}
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)

    def instantiate_trainer(self, **kwargs: object) -> Trainer:
        """The configured Trainer plus kexue's safety callbacks (see :mod:`kexue.platform.reliability`)."""
        trainer = super().instantiate_trainer(**kwargs)
        cfg, callbacks = self.config, trainer.callbacks
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: make it atomic
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        first_checkpoint = next((i for i, c in enumerate(callbacks) if isinstance(c, ModelCheckpoint)), len(callbacks))
        extra: list[Callback] = [ResumableState(self.task.name)]
        if cfg.stop_on_nan:
            extra.append(StopOnNonFiniteLoss())
        callbacks[first_checkpoint:first_checkpoint] = extra  # checkpoint callbacks stay last, as Lightning wants
        if trainer.checkpoint_callback is not None and self.command in ("fit", "run"):
            # After the task's own ModelCheckpoint, which stays trainer.checkpoint_callback (the "best" one).
            callbacks.append(LastCheckpoint(cfg.checkpoint_every_n_steps))
            callbacks.append(CheckpointOnInterrupt())
        return trainer


def _suggestion(message: str, parser: LightningArgumentParser) -> str:
    """``; did you mean --model.lr?`` for the first unrecognised option in ``message``, if one is close."""
    match = re.search(r"unrecognized arguments: (--[\w.]+)", message)
    if not match:
        return ""
    known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(match.group(1), known, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 400 else text[:400] + " ..."


def run_task(command: str, task: Task, args: list[str]) -> int:
    """Build the task's CLI from ``args`` and run ``command``; return the exit status."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    try:
        cli = KexueCLI(task, command, args)
    except argparse.ArgumentError as err:
        raise UsageError(f"{_one_line(err)} (see `kexue {command} {task.name} --help`)") from err
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    ckpt = cli.config.ckpt_path
    if command in ("fit", "run"):
        trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    if command == "run":
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        results = trainer.test(model, datamodule=data, ckpt_path="best" if best else None)
        if best:
            print(f"best checkpoint: {best}")
    elif command in ("validate", "test"):
        results = getattr(trainer, command)(model, datamodule=data, ckpt_path=ckpt)
    elif command == "predict":
        batches = trainer.predict(model, datamodule=data, ckpt_path=ckpt) or []
        for batch in batches:
            for item in batch if isinstance(batch, (list, tuple)) else [batch]:
                print(item)
    _close_loggers(trainer)
    if command in ("run", "validate", "test"):
        for name, value in sorted({k: v for r in results for k, v in r.items()}.items()):
            print(f"{name} {value:.4f}")
    # A task may end its output with lines of its own (e.g. the path of exported vectors).
    report = getattr(model, "report_lines", None)
    if callable(report) and trainer.is_global_zero:
        for line in report(command):
            print(line)
    return 0


def _close_loggers(trainer: Trainer) -> None:
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        hint = getattr(logger, "offline_hint", lambda: None)()
        if hasattr(logger, "finish"):
            logger.finish()
        if hint:
            print(hint, file=sys.stderr)
        elif isinstance(logger, CSVLogger):
            print(f"CSV logs in {logger.log_dir}", file=sys.stderr)


__all__ = ["KexueCLI", "run_task"]
