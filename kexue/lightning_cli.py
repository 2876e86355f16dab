"""The Lightning side of ``kexue fit|validate|test|predict|run TASK``: a LightningCLI per task.

Kept apart from :mod:`kexue.cli` so that ``kexue tasks`` never imports torch or Lightning.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from kexue.errors import UsageError
from kexue.loggers import fresh_run_dir
from kexue.registry import Task

DEFAULT_LOGGER = {"class_path": "kexue.loggers.WandbLogger", "init_args": {"save_dir": "runs"}}


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
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to start from or evaluate.")
        for source, target in self.task.links:
            parser.link_arguments(source, target)

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file() and cfg.ckpt_path not in ("best", "last"):
            raise UsageError("checkpoint not found", cfg.ckpt_path)
        if cfg.ckpt_path and self.command != "fit" and Path(cfg.ckpt_path).is_file():
            self._model_config_from_checkpoint(cfg.ckpt_path)
        self._name_loggers()

    def _model_config_from_checkpoint(self, path: str) -> None:
        """A checkpoint fixes the architecture: take the model's hyperparameters from it."""
        hparams = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
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
