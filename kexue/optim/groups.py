"""The parameter-group API of kexue: a model's ``parameter_groups()`` and what ``--optimizer`` builds from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from kexue.optim.optimizers import OptimizerSpec, build_optimizer, import_class


def scaled_param_groups(groups: Iterable[Mapping[str, Any]], lr: float) -> list[dict[str, Any]]:
    """Torch parameter groups with ``lr = lr * group["lr_multiplier"]`` (default 1), the key removed.

    This is the parameter-group API of kexue: a LightningModule that wants groups defines
    ``parameter_groups() -> list[dict]`` (torch group dicts; optional ``lr_multiplier`` and ``weight_decay``
    keys) and its ``configure_optimizers`` builds its optimizer on ``scaled_param_groups(groups, lr)``;
    ``--optimizer`` on the CLI uses the same groups through :func:`configure_optimizers`. The CRF's transition
    multiplier (https://kexue.fm/archives/5542), BERT's layer-wise decay and no-decay groups
    (:func:`layerwise_lr_groups`, :func:`no_weight_decay_groups`) are all such groups.
    """
    out = []
    for group in groups:
        group = dict(group)
        group["lr"] = lr * float(group.pop("lr_multiplier", 1.0))
        out.append(group)
    return out


def no_weight_decay_groups(
    named_parameters: Iterable[tuple[str, Tensor]], weight_decay: float, skip: tuple[str, ...] = ("bias", "norm")
) -> list[dict[str, Any]]:
    """Two groups: parameters whose name contains none of ``skip`` (case-insensitive) with ``weight_decay``, and
    the rest (biases, LayerNorm/RMSNorm gains) with ``weight_decay = 0``, as BERT's AdamW is used
    (https://kexue.fm/archives/6915). 1-D parameters count as norms/biases too. Empty groups are left out."""
    decay, no_decay = [], []
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        lowered = name.lower()
        (no_decay if param.ndim <= 1 or any(s in lowered for s in skip) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def layerwise_lr_groups(layers: list[torch.nn.Module], decay: float) -> list[dict[str, Any]]:
    """One group per layer, bottom first, with ``lr_multiplier = decay ** (L - 1 - i)``: the top layer trains at
    the full rate, each layer below at ``decay`` times the one above (layer-wise learning-rate decay for
    fine-tuning a pretrained encoder; pass the embeddings as layer 0)."""
    if not 0 < decay <= 1:
        raise ValueError(f"layer-wise lr decay must be in (0, 1], got {decay}")
    top = len(layers) - 1
    return [{"params": [p for p in layer.parameters() if p.requires_grad], "lr_multiplier": decay ** (top - i)}
            for i, layer in enumerate(layers)]


def module_param_groups(module: torch.nn.Module) -> list[dict[str, Any]]:
    """``module.parameter_groups()`` when the module defines it, else one group of all its parameters."""
    groups = getattr(module, "parameter_groups", None)
    return list(groups()) if callable(groups) else [{"params": [p for p in module.parameters() if p.requires_grad]}]


def component_param_groups(module: torch.nn.Module, component: torch.nn.Module,
                           exclude: Iterable[torch.nn.Parameter] = ()) -> list[dict[str, Any]]:
    """``component``'s own groups when it defines ``parameter_groups()`` (a BERT encoder's layer-wise rates and
    no-decay groups), then one group of ``module``'s other parameters (all of them when the component defines no
    groups), leaving out ``exclude`` (parameters the caller groups itself, e.g. CRF transitions)."""
    own = getattr(component, "parameter_groups", None)
    skip = {id(p) for p in exclude} | ({id(p) for p in component.parameters()} if callable(own) else set())
    rest = [p for p in module.parameters() if id(p) not in skip and p.requires_grad]
    return [*(own() if callable(own) else []), *([{"params": rest}] if rest else [])]


def configure_optimizers(module: torch.nn.Module, optimizer: OptimizerSpec, lr_scheduler: Any = None) -> Any:
    """What ``--optimizer`` / ``--lr_scheduler`` install as a model's ``configure_optimizers``.

    The optimizer is built on :func:`module_param_groups` (the model's own groups, e.g. the CRF transitions),
    each group's ``lr_multiplier`` is applied to the learning rate the optimizer settled on *before* the
    scheduler exists (so the scheduler's base rates include it), then the scheduler is built on it.
    ``lr_scheduler`` is a spec like ``optimizer`` (class, callable or ``class_path`` mapping) whose
    ``interval`` attribute, if ``"step"``, makes Lightning step it every optimizer step.
    """
    groups = module_param_groups(module)
    multipliers = [float(g.get("lr_multiplier", 1.0)) for g in groups]
    built = build_optimizer([{k: v for k, v in g.items() if k != "lr_multiplier"} for g in groups], optimizer)
    for group, multiplier in zip(built.param_groups, multipliers):
        group["lr"] *= multiplier
    if lr_scheduler is None:
        return built
    scheduler = _build_scheduler(built, lr_scheduler)
    config: dict[str, Any] = {"scheduler": scheduler, "interval": getattr(scheduler, "interval", "epoch")}
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = getattr(scheduler, "monitor", "val/loss")
    return {"optimizer": built, "lr_scheduler": config}


def _build_scheduler(optimizer: Optimizer, spec: Any) -> Any:
    if hasattr(spec, "as_dict"):
        spec = spec.as_dict()
    if isinstance(spec, str):
        spec = {"class_path": spec}
    if isinstance(spec, Mapping):
        init = dict(spec.get("init_args") or {})
        monitor = init.pop("monitor", None)  # LightningCLI's ReduceLROnPlateau subclass takes it; torch's does not
        scheduler = import_class(spec["class_path"])(optimizer, **init)
        if monitor is not None:
            scheduler.monitor = monitor
        return scheduler
    return spec(optimizer)


def adamw_one_cycle(params: Iterable[Any], lr: float, weight_decay: float, warmup: float, total_steps: int) -> dict:
    """Lightning's ``configure_optimizers`` answer for a small fixed epoch budget on the CPU: AdamW at peak ``lr``
    under one cycle (``warmup`` share of ``total_steps`` rising, then cosine decay to ~0), stepped per batch.
    Used by the tasks that train from scratch in a few minutes (spectra, kexue.fm/archives/5505; flow, 6482)."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, total_steps),
                                                   pct_start=warmup)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
