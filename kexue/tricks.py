"""Training tricks as Lightning callbacks that change a model from outside, so they work for any task.

Each one is switched on from config, e.g. ``kexue run TASK --config recompute`` (``conf/callbacks/*.yaml``
append to ``trainer.callbacks``) or ``--trainer.callbacks+=kexue.tricks.OrthogonalInit``. They pick
submodules by name with fnmatch patterns over ``model.named_modules()`` (``encoder.convs.*``).

Posts: 节省显存的重计算技巧也有了Keras版了 (https://kexue.fm/archives/7367) for :class:`Recompute`;
“让Keras更酷一些!”:中间变量、权重滑动和安全生成器 (https://kexue.fm/archives/6575) for
:class:`CaptureIntermediates` (the weight moving average is Lightning's ``EMAWeightAveraging``,
``conf/callbacks/ema.yaml``); 从几何视角来理解模型参数的初始化策略 (https://kexue.fm/archives/7180) for
:class:`OrthogonalInit`; 浅谈神经网络中激活函数的设计 (https://kexue.fm/archives/4647) for :class:`SwapActivation`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from types import MethodType
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from kexue.errors import UsageError


def match_modules(model: nn.Module, patterns: str | list[str], outermost: bool = False) -> dict[str, nn.Module]:
    """Submodules of ``model`` whose dotted name matches any fnmatch pattern (``""`` is the model itself).

    With ``outermost``, containers without a forward (``nn.ModuleList``) are dropped, then any match nested
    inside another match (wrapping both would recompute twice).
    Raises UsageError naming the patterns when nothing matches: a typo must not silently do nothing.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    found = {name: m for name, m in model.named_modules() if any(fnmatch.fnmatchcase(name, p) for p in patterns)}
    if outermost:  # containers (ModuleList...) have no forward to wrap: look inside them instead
        found = {n: m for n, m in found.items() if type(m).forward is not nn.Module.forward}
        found = {n: m for n, m in found.items() if not any(n.startswith(o + ".") for o in found if o != n)}
    if not found:
        names = [n for n, _ in model.named_modules() if n][:12]
        raise UsageError(f"no submodule matches {patterns} (some names: {', '.join(names)})")
    return found


def _forward_below_recompute(module: nn.Module) -> tuple[Callable, str]:
    """The forward to wrap and where to put it back: inside a :class:`Recompute` wrapper if there is one, so
    recomputation in the backward pass re-runs every other wrapper too."""
    if "_recompute_inner" in module.__dict__:
        return module.__dict__["_recompute_inner"], "_recompute_inner"
    return module.forward, "forward"


_aten = torch.ops.aten
# Fused attention kernels (one op each; the math fallback decomposes into matmuls and softmax).
_ATTENTION_OPS = {
    getattr(_aten, name).default
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    if hasattr(_aten, name)
}
# Matrix products and the positions of their two factors in the op's arguments.
_MATMUL_OPS = {_aten.mm.default: 0, _aten.bmm.default: 0, _aten.addmm.default: 1, _aten.baddbmm.default: 1}
SAVE_GROUPS = ("attention", "down_proj")


def _save_policy(groups: tuple[str, ...]) -> Callable:
    """The selective-checkpoint policy keeping the outputs of ``groups`` (see :class:`Recompute`)."""

    def policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
        if "attention" in groups and op in _ATTENTION_OPS:
            return CheckpointPolicy.MUST_SAVE
        if "down_proj" in groups and op in _MATMUL_OPS:
            first = _MATMUL_OPS[op]
            a, b = args[first], args[first + 1]
            if b.shape[-1] < a.shape[-1]:  # (m, k) @ (k, n) with n < k: most work per saved number
                return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def _check_recompute_args(keep_last: int, save: list[str] | tuple[str, ...]) -> None:
    if keep_last < 0:
        raise UsageError(f"Recompute keep_last must be >= 0, got {keep_last}")
    unknown = sorted(set(save) - set(SAVE_GROUPS))
    if unknown:
        raise UsageError(f"Recompute save: unknown {unknown}; choose from {list(SAVE_GROUPS)}")


def _recomputed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    inner = self.__dict__["_recompute_inner"]
    if self.training and torch.is_grad_enabled():
        save = self.__dict__.get("_recompute_save", ())
        if save:
            policy = _save_policy(save)
            kwargs["context_fn"] = lambda: create_selective_checkpoint_contexts(policy)
        return checkpoint(inner, *args, use_reentrant=False, **kwargs)
    return inner(*args, **kwargs)


def saved_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn()`` runs: what recomputation trades for time
    (https://kexue.fm/archives/7367). A measuring tool for tests and benchmarks."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


class Recompute(L.Callback):
    """Gradient checkpointing (https://kexue.fm/archives/7367) for the matched submodules of any model.

    Each matched block keeps only its inputs during training; its activations are recomputed in the backward
    pass (``torch.utils.checkpoint``, non-reentrant): activation memory falls from one copy per block to
    about one block's worth, for roughly one extra forward pass. Eval and no-grad forwards are unchanged.

    ``keep_last`` leaves the last k matched blocks as they are, for less recomputation at the same peak: with
    ``zero_grad(set_to_none=True)`` (Lightning's default) the gradients are allocated during the backward pass
    while the activations are freed, so the peak of a checkpointed step comes at its end (all gradients plus one
    recomputed block), and the last blocks' activations, used first and freed first, fit under it as long as
    they take less than the gradients do. ``benchmarks/recompute.py --keep-last`` measures where that stops.

    ``save`` makes the checkpoint selective (torch's ``create_selective_checkpoint_contexts``): the outputs of
    the named kinds of op are kept from the forward pass and only the rest is recomputed.
    ``"attention"`` keeps fused attention kernels' outputs (one ``(B, T, d)`` tensor and a ``(B, heads, T)``
    log-sum-exp per block), ``"down_proj"`` the outputs of matrix products ``(m, k) @ (k, n)`` with ``n < k``,
    such as a Transformer's second feed-forward layer: each saved number spares ``k`` multiply-adds, the most
    of any product in the block. Each kind keeps about one more input-sized tensor per block.

    Args:
        modules: fnmatch pattern(s) of the repeated blocks, e.g. ``"encoder.convs.*"``; nested matches are
            skipped.
        keep_last: how many of the last matched blocks (in ``named_modules`` order, i.e. registration order) to
            leave un-checkpointed.
        save: op kinds whose outputs are kept rather than recomputed, from ``"attention"``, ``"down_proj"``.
    """

    def __init__(
        self,
        modules: str | list[str] = "encoder.*",
        keep_last: int = 0,
        save: list[Literal["attention", "down_proj"]] | None = None,
    ) -> None:
        _check_recompute_args(keep_last, save or ())
        self.modules = modules
        self.keep_last = keep_last
        self.save = list(save or ())

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        wrap_recompute(pl_module, self.modules, self.keep_last, self.save)


def wrap_recompute(
    model: nn.Module, modules: str | list[str], keep_last: int = 0, save: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """Wrap the matched submodules' ``forward`` in non-reentrant checkpointing (idempotent); returns their names.

    The last ``keep_last`` matches (``named_modules`` order) are left alone, and ``save`` names the op kinds
    kept rather than recomputed (see :class:`Recompute`). The wrappers are bound methods stored on each module,
    so ``copy.deepcopy`` (EMA's averaged model) rebinds them to the copy.
    """
    _check_recompute_args(keep_last, save)
    found = match_modules(model, modules, outermost=True)
    if keep_last:
        if keep_last >= len(found):
            raise UsageError(f"keep_last={keep_last} leaves none of the {len(found)} matched blocks checkpointed")
        found = dict(list(found.items())[: len(found) - keep_last])
    for module in found.values():
        if "_recompute_inner" not in module.__dict__:
            module._recompute_inner = module.forward
            module.forward = MethodType(_recomputed_forward, module)
        module._recompute_save = tuple(save)
    return list(found)


class OrthogonalInit(L.Callback):
    """Orthogonal initialisation (https://kexue.fm/archives/7180) of the matched layers' weight matrices.

    The post's view: in high dimension, random ``N(0, 1/n)`` vectors are nearly orthogonal, so the usual
    initialisations are nearly orthogonal maps that keep ``||Wx|| ~ ||x||``; an orthogonal matrix does it
    exactly. Applied at the start of ``fit`` to every ``weight*`` of 2+ dims (viewed as ``(out, in*k)``) of
    Linear, convolution and recurrent layers; embeddings and norms are left alone. A checkpoint loaded
    afterwards (resume, test) overwrites it as usual.

    Args:
        modules: fnmatch pattern(s) of the layers (``"*"``: all).
        gain: scale of the orthogonal matrix.
    """

    LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase, nn.Bilinear)

    def __init__(self, modules: str | list[str] = "*", gain: float = 1.0) -> None:
        self.modules, self.gain = modules, gain
        self.initialised: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.initialised = []
        with torch.no_grad():
            for name, module in match_modules(pl_module, self.modules).items():
                if not isinstance(module, self.LAYERS):
                    continue
                for pname, p in module.named_parameters(recurse=False):
                    if pname.startswith("weight") and p.dim() >= 2:
                        nn.init.orthogonal_(p, gain=self.gain)
                        self.initialised.append(f"{name}.{pname}")


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu, "swish": F.silu}
_CALLS = {
    "relu": {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_},
    "gelu": {F.gelu},
    "swish": {F.silu},
}


class _ActivationMode(TorchFunctionMode):
    """Inside it, calls of the ``replace`` activations (functional or through modules) run ``activation``."""

    def __init__(self, replace: set, activation: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.replace, self.activation = replace, activation

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in self.replace:
            return self.activation(args[0])  # in-place variants become out-of-place: same value, autograd-safe
        return func(*args, **(kwargs or {}))


def _swapped_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    inner, mode = self.__dict__["_activation_inner"], self.__dict__["_activation_mode"]
    with mode:
        return inner(*args, **kwargs)


class SwapActivation(L.Callback):
    """Run a net with another activation (https://kexue.fm/archives/4647: relu, gelu, swish), no model code
    changes.

    The matched modules' forwards run under a ``TorchFunctionMode`` that turns every call of the ``replace``
    activations into ``activation``: ``F.relu`` in a forward and ``nn.ReLU`` modules alike. Losses and
    metrics are never matched (a threshold loss's ``relu`` must stay one). It acts in every stage, so pass it
    again when testing a checkpoint trained with it (the saved ``config.yaml`` has it).

    Args:
        activation: ``"relu"``, ``"gelu"`` or ``"swish"`` (``x * sigmoid(x)``).
        replace: the activations to replace.
        modules: fnmatch pattern(s) of the modules to act in (``"*"``: the whole model).
    """

    def __init__(
        self,
        activation: Literal["relu", "gelu", "swish"] = "gelu",
        replace: list[Literal["relu", "gelu", "swish"]] = ["relu"],  # noqa: B006
        modules: str | list[str] = "*",
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation, self.replace, self.modules = activation, list(replace), modules

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        swap_activation(pl_module, self.activation, self.replace, self.modules)


def swap_activation(model: nn.Module, activation: str, replace: list[str], modules: str | list[str] = "*") -> None:
    """Make the matched submodules of ``model`` compute ``activation`` where they called ``replace`` (idempotent)."""
    from torchmetrics import Metric, MetricCollection

    calls = set().union(*(_CALLS[r] for r in replace if r != activation))
    mode = _ActivationMode(calls, ACTIVATIONS[activation])
    for name, module in match_modules(model, modules).items():
        if "loss" in name.lower() or isinstance(module, (nn.modules.loss._Loss, Metric, MetricCollection)):
            continue
        if "_activation_inner" in module.__dict__:
            module._activation_mode = mode
            continue
        inner, slot = _forward_below_recompute(module)
        module._activation_inner, module._activation_mode = inner, mode
        setattr(module, slot, MethodType(_swapped_forward, module))


class CaptureIntermediates(L.Callback):
    """Log intermediate outputs (e.g. attention matrices) of named submodules as images during validation
    (the post's 中间变量, https://kexue.fm/archives/6575), through forward hooks: no model code changes.

    At each ``every_n_epochs``-th validation the first batch's output of each matched module is kept
    (``captured[name]``, on CPU) and drawn as a heatmap of its first sample: a ``(B, T, D)`` output shows
    ``(T, D)``, a ``(B, H, T, T)`` attention shows head 0; W&B gets it as ``intermediate/<name>`` (and the run
    dir as PNG, see :func:`kexue.platform.figures.log_figure`).

    Args:
        modules: fnmatch pattern(s) of the modules to capture.
        output_index: which element to take when a module returns a tuple (``nn.MultiheadAttention``: 1 =
            the attention weights).
        every_n_epochs: capture every n-th validation epoch.
    """

    def __init__(self, modules: str | list[str] = "encoder", output_index: int = 0, every_n_epochs: int = 1) -> None:
        self.modules, self.output_index, self.every_n_epochs = modules, output_index, every_n_epochs
        self.captured: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name in self.captured:
                return
            if isinstance(output, (tuple, list)):
                output = output[self.output_index]
            if isinstance(output, Tensor):
                self.captured[name] = output.detach().float().cpu()

        return hook

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.captured = {}
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        for name, module in match_modules(pl_module, self.modules).items():
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        for handle in self._handles:  # the first batch is enough: stop paying for the hooks
            handle.remove()
        self._handles = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from kexue.platform.figures import log_figure

        for name, value in self.captured.items():
            log_figure(trainer, f"intermediate/{name or 'model'}", heatmap_figure(value, name))


def heatmap_figure(value: Tensor, title: str = "") -> Any:
    """A matplotlib heatmap of the first sample of a batched tensor ``(B, ...)``, reduced to 2-D."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = value[0] if value.dim() > 1 else value
    while x.dim() > 2:
        x = x[0]  # (H, T, T) -> (T, T): the first head / channel
    x = x.reshape(1, -1) if x.dim() < 2 else x  # (1, D) for vectors
    fig, ax = plt.subplots(figsize=(6, 4))
    image = ax.imshow(x.numpy(), aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    return fig


__all__ = [
    "CaptureIntermediates",
    "OrthogonalInit",
    "Recompute",
    "saved_tensor_bytes",
    "SwapActivation",
    "heatmap_figure",
    "match_modules",
    "swap_activation",
    "wrap_recompute",
]
