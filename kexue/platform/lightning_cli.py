"""The Lightning side of ``kexue fit|validate|test|predict|run TASK``: a LightningCLI per task.

Kept apart from :mod:`kexue.platform.cli` so that ``kexue tasks`` never imports torch or Lightning.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from types import MethodType
from typing import Any, TextIO

import torch
from jsonargparse import dict_to_namespace
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, LRSchedulerTypeTuple, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from torch.optim import Optimizer

from kexue.errors import UsageError, one_line
from kexue.metrics.missing import figure_line
from kexue.optim import configure_optimizers
from kexue.platform.boundary import Phase, given_options, report
from kexue.platform.loggers import RunDirectory, withdraw_run
from kexue.platform.options import (
    check_checkpoint_arguments,
    check_options,
    check_parameters,
    flatten_parser_keys,
    suggestion,
    tolerate_unused_parameters,
)
from kexue.platform.reliability import (
    AtomicCheckpointIO,
    CheckpointOnInterrupt,
    LastCheckpoint,
    ResumableState,
    StopOnNonFiniteLoss,
    check_checkpoint_task,
)
from kexue.platform.stdout import predictions_only
from kexue.registry import Task, check_links

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

    Every Trainer argument is exposed as ``--trainer.*``; ``--ckpt_path`` and the reliability options are added
    for all commands; ``--optimizer`` / ``--lr_scheduler`` build on the model's ``parameter_groups()``
    (:func:`kexue.optim.configure_optimizers`). Each run gets a fresh directory under
    ``--trainer.default_root_dir`` (default ``runs/TASK``): its config, checkpoints, figures and logs. ``run`` makes
    it (:class:`~kexue.platform.loggers.RunDirectory`); the caller keeps it, so that a command refused while this
    object is being built can still take its directory back.
    """

    def __init__(self, task: Task, command: str, args: list[str], run: RunDirectory | None = None) -> None:
        self.task, self.command, self.run = task, command, run or RunDirectory()
        self.from_checkpoint = command in ("validate", "test", "predict") and any(
            a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in args)
        self.run_dir: str | None = None
        check_links(task)  # a plugin's typo'd link: one line naming it, before any data is read
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
                "allow_abbrev": False,  # --trainer.max_epoch must be an error, never a guess
            },
            auto_configure_optimizers=False,  # kexue's --optimizer keeps the model's parameter groups
            args=args,
            run=False,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="Checkpoint to resume `fit` from or to evaluate; `last` = the newest last.ckpt or "
                                 "interrupted.ckpt of this task under the root directory.")
        parser.add_argument("--untrained", type=bool, default=False,
                            help="validate/test/predict without a checkpoint, with freshly initialised weights.")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=100,
                            help="Save last.ckpt every N optimizer steps and after each validation (0: only "
                                 "then); a kill loses at most the steps since then.")
        parser.add_argument("--stop_on_nan", type=bool, default=True,
                            help="Stop with a one-line error at the first non-finite loss or gradient.")
        parser.add_optimizer_args((Optimizer,))
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        for source, target in self.task.links:
            parser.link_arguments(source, target)
        if not self.from_checkpoint:  # otherwise the checkpoint fixes the model's sizes
            for source, target in self.task.data_links:
                parser.link_arguments(source, target, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            raise UsageError(f"{flatten_parser_keys(one_line(err, with_type=False))}{suggestion(str(err), parser)} "
                             f"(see `kexue {self.command} {self.task.name} --help`)") from err

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        root = cfg.trainer.default_root_dir or f"runs/{self.task.name}"
        check_options(cfg)
        if getattr(self.model_class, "ddp_unused_parameters", False):
            cfg.trainer.strategy = tolerate_unused_parameters(cfg.trainer.strategy)
        if cfg.ckpt_path == "last":
            cfg.ckpt_path = newest_checkpoint(root, self.task.name)
        elif cfg.ckpt_path == "best":
            raise UsageError("--ckpt_path best: give a checkpoint file (`kexue run` tests its best checkpoint "
                             "itself) or `last`")
        elif cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
            raise UsageError("checkpoint not found", cfg.ckpt_path)
        if cfg.ckpt_path:
            checkpoint = read_checkpoint(cfg.ckpt_path, self.task.name)
            check_checkpoint_arguments(checkpoint, self.model_class, self.datamodule_class, cfg.ckpt_path)
            if self.command in ("validate", "test", "predict"):
                self._config_from_checkpoint(checkpoint)
        if cfg.lr_scheduler and not cfg.optimizer:
            raise UsageError("--lr_scheduler needs --optimizer (or an optimizer preset, e.g. --config adafactor)")
        # DDP children re-run this command after rank 0 made the run directory: they inherit its name, so every
        # rank writes and reads the same run (best checkpoint included).
        inherited = os.environ.get("KEXUE_RUN_DIR") if rank_zero_only.rank != 0 else None
        self.run_dir = inherited or self.run.make(root)
        os.environ["KEXUE_RUN_DIR"] = self.run_dir
        cfg.trainer.default_root_dir = self.run_dir
        self._name_loggers()

    def _config_from_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint fixes the architecture and the featurisation: the model's hyperparameters (except those its
        class lists in ``runtime_arguments``, such as decoding options) and the DataModule's ``featurization``
        arguments come from it; a network or tokenizer component comes back as its ``{class_path, init_args}``."""
        runtime = getattr(self.model_class, "runtime_arguments", ())  # e.g. decoding options: the user's win
        for key, value in checkpoint.get("hyper_parameters", {}).items():
            if key in self.config.model and key not in runtime:
                self.config.model[key] = dict_to_namespace(value) if isinstance(value, dict) else value
        data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
        for key in getattr(self.datamodule_class, "featurization", ()):
            if key in data_hparams and key in self.config.data:  # a tokenizer is saved as its class_path dict
                value = data_hparams[key]
                self.config.data[key] = dict_to_namespace(value) if isinstance(value, dict) else value

    def _name_loggers(self) -> None:
        trainer = self.config.trainer
        if self.command == "predict":  # stdout carries the predictions; keep the bar out of it
            trainer.enable_progress_bar = False
        loggers = trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(logger, "init_args", None)
            if init is None:
                continue
            if "save_dir" in init:  # every logger writes into the run's own directory
                init.save_dir = self.run_dir
            if logger.class_path.endswith("WandbLogger"):
                init.group = init.get("group") or self.task.name
                init.job_type = init.get("job_type") or self.command
                init.tags = init.get("tags") or [self.task.name]
            elif logger.class_path.endswith("CSVLogger"):
                init.name, init.version = "", ""

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            runtime = getattr(self.model_class, "runtime_arguments", ())  # the user's options, not the checkpoint's
            if not self.from_checkpoint or any(f"model.{key}" in str(err) for key in runtime):
                raise  # the error boundary reports it (kexue.platform.boundary)
            why = one_line(err, with_type=False)
            raise UsageError(f"checkpoint does not fit this kexue's '{self.task.name}' model ({why}); it was "
                             "probably written by an older kexue: retrain", self.config.ckpt_path) from err
        cfg = self.config
        check_parameters(self.model)
        # The loggers get the whole parsed config (LoggedSaveConfigCallback), so the DataModule's hyperparameters are
        # not merged into the model's as well: Lightning refuses a key both have with different values, e.g. a
        # vocabulary the data fills after save_hyperparameters() copied it (None) or pretrain's data.vocab_size (the
        # WordPiece target) vs model.vocab_size (the pieces it got).
        if self.datamodule is not None:
            self.datamodule._log_hyperparams = False
        # A model with nothing to fit (e.g. text_similarity's fixed vectors) says so with requires_checkpoint = False.
        needs = getattr(self.model, "requires_checkpoint", True)
        if self.command in ("validate", "test", "predict") and not cfg.ckpt_path and not cfg.untrained and needs:
            raise UsageError(f"`kexue {self.command}` needs --ckpt_path (a checkpoint file, or `last`); "
                             "--untrained true evaluates freshly initialised weights")
        if self.config.optimizer:
            optimizer, scheduler = self.config_init.optimizer, self.config_init.lr_scheduler

            def configure(module: LightningModule) -> Any:  # a function, not a partial: Lightning inspects __code__
                return configure_optimizers(module, optimizer, scheduler)

            self.model.configure_optimizers = MethodType(configure, self.model)  # as LightningCLI does with its own

    def instantiate_trainer(self, **kwargs: object) -> Trainer:
        """The configured Trainer plus kexue's safety callbacks (see :mod:`kexue.platform.reliability`)."""
        trainer = super().instantiate_trainer(**kwargs)
        cfg, callbacks = self.config, trainer.callbacks
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: make it atomic
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        self._default_checkpoint(trainer)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(Path(self.run_dir, "checkpoints"))
        first_checkpoint = next((i for i, c in enumerate(callbacks) if isinstance(c, ModelCheckpoint)), len(callbacks))
        extra: list[Callback] = [ResumableState(self.task.name), Phase(checkpoint=bool(cfg.get("ckpt_path")))]
        if cfg.stop_on_nan:
            extra.append(StopOnNonFiniteLoss())
        callbacks[first_checkpoint:first_checkpoint] = extra  # checkpoint callbacks stay last, as Lightning wants
        if trainer.checkpoint_callback is not None and self.command in ("fit", "run"):
            # After the task's own ModelCheckpoint, which stays trainer.checkpoint_callback (the "best" one).
            callbacks.append(LastCheckpoint(cfg.checkpoint_every_n_steps))
            callbacks.append(CheckpointOnInterrupt())
        return trainer

    def _default_checkpoint(self, trainer: Trainer) -> None:
        """A task whose YAML sets no ModelCheckpoint still gets its best checkpoint kept and tested: monitor the
        ``val/`` twin of ``Task.metric`` (``min`` for losses and errors, else ``max``)."""
        callback = trainer.checkpoint_callback
        if not self.task.metric or not isinstance(callback, ModelCheckpoint) or callback.monitor is not None:
            return
        configured = self.config.trainer.callbacks or []
        if any("ModelCheckpoint" in str(getattr(c, "class_path", "")) for c in configured):
            return  # the YAML chose its own (e.g. no monitor: keep the newest); only Lightning's default is replaced
        if type(callback) is not ModelCheckpoint or trainer.fast_dev_run:
            return
        name = self.task.metric.split("/", 1)[-1]
        lower = any(word in name for word in ("loss", "nll", "error", "perplexity", "mse", "bpd"))
        best = ModelCheckpoint(monitor=f"val/{name}", mode="min" if lower else "max", filename="best-{epoch}",
                               auto_insert_metric_name=False)
        trainer.callbacks[trainer.callbacks.index(callback)] = best


def newest_checkpoint(root: str, task: str) -> str:
    """The newest ``last*.ckpt`` or ``interrupted*.ckpt`` under ``root`` (what ``--ckpt_path last`` means)."""
    found = [p for pattern in ("**/last*.ckpt", "**/interrupted*.ckpt") for p in Path(root).glob(pattern)]
    if not found:
        raise UsageError(f"--ckpt_path last: no last.ckpt or interrupted.ckpt of task '{task}' under {root}/")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def read_checkpoint(path: str, task: str) -> dict:
    """The checkpoint as a dict, loaded with ``weights_only=True`` (never runs pickled code)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a checkpoint, unsafe pickle: all one message
        why = one_line(err, limit=160, with_type=False)
        raise UsageError(f"cannot read checkpoint (truncated, corrupt or unsafe?): {why}", path) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError("not a Lightning checkpoint (no state_dict)", path)
    check_checkpoint_task(checkpoint.get("kexue", {}).get("task"), task, path)
    return checkpoint


class PredictionPrinter(BasePredictionWriter):
    """Prints ``predict_step``'s strings once, in input order, one line per input line, under any number of
    processes: each rank's predictions and their dataset indices are gathered on rank 0, which drops the
    repeats a distributed sampler pads with. They go to ``stream`` (default ``sys.stdout``): under
    :func:`predictions_only` the one stream left on the command's stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.stream = stream

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions: Any,
                           batch_indices: Any) -> None:
        pairs = [
            (index, item)
            for batch, indices in zip(predictions, batch_indices[0] if batch_indices else [])
            for index, item in zip(indices, batch if isinstance(batch, (list, tuple)) else [batch])
        ]
        if trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, pairs)
            pairs = [pair for part in gathered for pair in part]
        if trainer.is_global_zero:
            for _, item in sorted(dict(pairs).items()):
                print(item, file=self.stream or sys.stdout, flush=True)


def run_task(command: str, task: Task, args: list[str]) -> int:
    """Build the task's CLI from ``args`` and run ``command``; return the exit status. Everything runs inside
    the error boundary (:mod:`kexue.platform.boundary`)."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # A component argument (the encoder) is saved as its config dict; Lightning's hint to ignore it is moot.
    warnings.filterwarnings("ignore", message=r"Attribute '\w+' is an instance of `nn.Module`")
    cli = phase = None
    run = RunDirectory()
    # predict's stdout carries its predictions alone, from the first line of the command (a tokenizer fitted
    # while the classes are built prints too); every other line goes to stderr.
    with predictions_only() if command == "predict" else nullcontext(sys.stdout) as stream:
        try:
            try:
                cli = KexueCLI(task, command, args, run)
            except argparse.ArgumentError as err:
                raise UsageError(f"{flatten_parser_keys(one_line(err, with_type=False))} "
                                 f"(see `kexue {command} {task.name} --help`)") from err
            phase = next(c for c in cli.trainer.callbacks if isinstance(c, Phase))
            return _run(cli, command, stream)
        except (KeyboardInterrupt, SystemExit):
            raise  # the CLI maps Ctrl-C and SIGTERM to 130 / 143
        except BaseException as err:
            status = report(err, phase, cli.run_dir if cli is not None else run.path, given_options(args))
            if status == 2 and not _trained(cli):  # refused (a bad input, no memory for the first batch): leave runs/
                withdraw_run(getattr(cli, "trainer", None), run)  # as it was, quietly (the one line stays the last)
            return status


def _trained(cli: KexueCLI | None) -> bool:
    """Whether the command took an optimizer step (its run directory is then the user's record of it)."""
    trainer = getattr(cli, "trainer", None)
    return bool(getattr(trainer, "global_step", 0))


def _run(cli: KexueCLI, command: str, stream: TextIO) -> int:
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    ckpt = cli.config.ckpt_path
    if command in ("fit", "run"):
        trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    if command == "run":
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        results = trainer.test(model, datamodule=data, ckpt_path=best or None)
        if best:
            print(f"best checkpoint: {best}")
    elif command in ("validate", "test"):
        results = getattr(trainer, command)(model, datamodule=data, ckpt_path=ckpt)
    elif command == "predict":
        trainer.callbacks.append(PredictionPrinter(stream))
        trainer.predict(model, datamodule=data, ckpt_path=ckpt, return_predictions=False)
    _close_loggers(trainer)
    if command in ("run", "validate", "test"):
        missing = getattr(model, "missing_figures", None) or {}  # figures computed on nothing (kexue.metrics.missing)
        for name, value in sorted({k: v for r in results for k, v in r.items()}.items()):
            print(figure_line(name, value, missing))
    # A task may end its output with lines of its own (e.g. the path of exported vectors; on stderr under predict).
    lines = getattr(model, "report_lines", None)
    if callable(lines) and trainer.is_global_zero:
        for line in lines(command):
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


__all__ = ["KexueCLI", "PredictionPrinter", "check_options", "newest_checkpoint", "predictions_only", "read_checkpoint",
           "run_task"]
