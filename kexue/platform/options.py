"""What the CLI checks and adjusts in a parsed config before anything is instantiated: option values Lightning or
torch would reject with a traceback, the DDP variant a model needs, a "did you mean" for a mistyped option.
Used by :class:`kexue.platform.lightning_cli.KexueCLI`.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser

from kexue.errors import UsageError


def check_options(cfg: Any) -> None:
    """UsageError naming the option for values Lightning, torch or a DataLoader would reject with a traceback."""
    checks = [
        ("data.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("data.num_workers", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        ("model.lr", lambda v: v >= 0, ">= 0"),
        ("model.weight_decay", lambda v: v >= 0, ">= 0"),
        ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("data.max_length", lambda v: v >= 1, ">= 1"),
        ("trainer.accumulate_grad_batches", lambda v: v >= 1, "an integer >= 1"),
        ("trainer.max_epochs", lambda v: v >= -1, ">= -1 (-1: no limit)"),
        ("trainer.max_steps", lambda v: v >= -1, ">= -1 (-1: no limit)"),
        ("trainer.gradient_clip_val", lambda v: v >= 0, ">= 0"),
        ("trainer.check_val_every_n_epoch", lambda v: v >= 1, ">= 1"),
        ("checkpoint_every_n_steps", lambda v: v >= 0, ">= 0"),
    ]
    for key, ok, expected in checks:
        value = cfg.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            good = ok(value)
        except TypeError:
            continue  # a type jsonargparse accepted and we do not know: leave it to the task
        if not good:
            raise UsageError(f"--{key} must be {expected}, got {value}")
    for key, value in _flat(cfg):  # rules by name, for every component: torch checks a few dropouts (SDPA none),
        leaf = key.rsplit(".", 1)[-1]  # numpy / sklearn seeds fail with a message that names no option
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if "dropout" in leaf and not 0 <= value < 1:
            raise UsageError(f"--{key} must be in [0, 1), got {value}")
        if (leaf == "seed" or leaf.endswith("_seed")) and not 0 <= value < 2**32:
            raise UsageError(f"--{key} must be in [0, 2**32), got {value}")
    accelerator = str(cfg.get("trainer.accelerator") or "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UsageError(f"--trainer.accelerator {accelerator}: no CUDA GPU is visible on this machine "
                         "(use cpu or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--trainer.accelerator mps: no Apple GPU on this machine (use cpu or auto)")


def _flat(cfg: Any) -> list[tuple[str, Any]]:
    """``(key, value)`` of every model and data option, components' ``init_args`` and nested dataclasses included."""
    flat = cfg.clone().as_flat() if hasattr(cfg, "as_flat") else cfg
    return [(k, v) for k, v in vars(flat).items() if k.startswith(("model.", "data."))]


def check_parameters(model: torch.nn.Module) -> None:
    """UsageError naming the component (``model.encoder``) when a network has a weight with no elements: a size
    option of 0 builds such a layer without complaint, and it fails only at the first batch, where the error
    boundary would take it for a bug."""
    for name, weight in model.named_parameters():
        if not torch.nn.parameter.is_lazy(weight) and weight.numel() == 0:
            raise UsageError(f"model.{name.split('.')[0]} has a weight of shape {tuple(weight.shape)} ({name}): one of "
                             "its sizes is 0")


def tolerate_unused_parameters(strategy: Any) -> Any:
    """Lightning's DDP strategy that lets a step leave parameters without a gradient (``find_unused_parameters``),
    for models that declare ``ddp_unused_parameters = True``: a GAN's discriminator step, a two-stage model. Plain
    DDP stops such a model at its first step; other strategies are returned as they are."""
    if isinstance(strategy, str) and strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        return f"{strategy}_find_unused_parameters_true"
    init = getattr(strategy, "init_args", None)  # --trainer.strategy DDPStrategy with its own arguments
    if init is not None and str(strategy.class_path).endswith("DDPStrategy") and "find_unused_parameters" not in init:
        init["find_unused_parameters"] = True
    return strategy


NESTED_KEY = re.compile(r'Parser key "([\w.]+)": Problem with given class_path \'([\w.]+)\': Parser key "([\w.]+)"')


def flatten_parser_keys(message: str) -> str:
    """jsonargparse's error for an argument of a component, ``Parser key "model.net": Problem with given class_path
    'kexue.models.CausalLM': Parser key "dim": ...``, as the one option a user types: ``Parser key "model.net.dim"
    (kexue.models.CausalLM): ...`` (components in components too)."""
    while True:
        flat = NESTED_KEY.sub(lambda m: f'Parser key "{m[1]}.{m[3]}" ({m[2]})', message, count=1)
        if flat == message:
            return message
        message = flat


def suggestion(message: str, parser: LightningArgumentParser) -> str:
    """``; did you mean --model.lr?`` for the first unrecognised option in ``message``, if one is close."""
    match = re.search(r"unrecognized arguments: (--[\w.]+)", message)
    if not match:
        return ""
    known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(match.group(1), known, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def check_checkpoint_arguments(checkpoint: dict, model_class: type, datamodule_class: type, path: str) -> None:
    """UsageError (one line: retrain) when ``checkpoint`` was written with model or data arguments this version's
    classes no longer take — e.g. a ``config`` / ``checkpoint`` pair from before networks became components. Its
    weights would otherwise meet a different network, or its sizes be silently dropped."""
    stale = [f"model.{k}" for k in _unknown(checkpoint.get("hyper_parameters", {}), model_class)]
    stale += [f"data.{k}" for k in _unknown(checkpoint.get("datamodule_hyper_parameters", {}), datamodule_class)]
    if stale:
        raise UsageError(f"written by an older kexue whose task took {', '.join(stale)}, which this version does not "
                         "(its networks are now components): retrain it with this version", path)


def _unknown(hparams: dict, cls: type) -> list[str]:
    """Names in ``hparams`` that ``cls.__init__`` does not take, following ``**kwargs`` into the base classes'
    ``__init__`` as jsonargparse does (a DataModule's shared arguments are its base's); none when the chain ends in
    ``**kwargs`` (it takes anything)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names.update(n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return [k for k in hparams if not k.startswith("_") and k not in names]
    return []


__all__ = ["check_checkpoint_arguments", "check_options", "check_parameters", "flatten_parser_keys", "suggestion",
           "tolerate_unused_parameters"]
