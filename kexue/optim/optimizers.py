"""Optimizers, optimizer wrappers and the step-wise LR schedule of :mod:`kexue.optim` (see its docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from kexue.registry import import_object

Params = Iterable[Tensor] | Iterable[dict[str, Any]]
OptimizerSpec = Callable[[Iterable], Optimizer] | Mapping[str, Any] | str


def import_class(path: str) -> Any:
    """The optimizer or scheduler class at the dotted ``path``; ``ValueError`` (a one-line CLI error) if absent."""
    try:
        return import_object(path)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import optimizer {path!r}: {err}") from err


def run_closure(closure: Callable[[], float] | None) -> float | None:
    """The loss of an optimizer step's ``closure`` (forward + backward, run with gradients on), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def build_optimizer(params: Params, spec: OptimizerSpec) -> Optimizer:
    """An optimizer over ``params`` from ``spec``: a class or callable, a dotted class name, or a mapping
    ``{"class_path": ..., "init_args": {...}}`` (what LightningCLI / jsonargparse hand over; may nest)."""
    if hasattr(spec, "as_dict"):  # a jsonargparse Namespace
        spec = spec.as_dict()
    if isinstance(spec, str):
        spec = {"class_path": spec}
    if isinstance(spec, Mapping):
        if "class_path" not in spec:
            raise ValueError(f"optimizer spec needs a class_path, got {dict(spec)!r}")
        return import_class(spec["class_path"])(params, **dict(spec.get("init_args") or {}))
    if callable(spec):
        return spec(params)
    raise ValueError(f"cannot build an optimizer from {spec!r}")


class AdaFactor(torch.optim.Adafactor):
    """AdaFactor as in https://kexue.fm/archives/7302: ``torch.optim.Adafactor`` plus what the post has and it lacks.

    torch already has the factored second moment ``v ~ r c^T / mean(r)`` over the last two dims, ``beta2_t =
    1 - t^beta2_decay``, update clipping ``u / max(1, RMS(u) / d)``, the relative step ``rho_t = min(lr,
    1/sqrt(t))`` and the parameter scale ``alpha = max(eps2, RMS(theta)) * rho_t``. Added here:

    Args:
        beta1: first-moment momentum on the clipped update, ``m = beta1 m + (1 - beta1) u`` (None: no momentum,
            which is what keeps the state sublinear).
        min_dim_size_to_factor: factor only tensors whose last two dims are both at least this (the post's 128);
            smaller ones keep a full second moment like Adam (0 factors every matrix, as torch does).
        relative_step: ``rho_t = min(lr, 1/sqrt(t))`` (True) or the fixed ``lr`` (False).
        scale_parameter: multiply the step by ``max(eps2, RMS(theta))``.

    The remaining arguments are torch's. Shapes: any parameter; factoring uses dims ``(-2, -1)``.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        beta1: float | None = None,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        min_dim_size_to_factor: int = 128,
        relative_step: bool = True,
        scale_parameter: bool = True,
        maximize: bool = False,
    ) -> None:
        if beta1 is not None and not 0.0 <= beta1 < 1.0:
            raise ValueError(f"beta1 must be in [0, 1) or None, got {beta1}")
        super().__init__(
            params,
            lr=lr,
            beta2_decay=beta2_decay,
            eps=eps,
            d=d,
            weight_decay=weight_decay,
            foreach=False,
            maximize=maximize,
        )
        for group in self.param_groups:
            group.setdefault("beta1", beta1)
            group.setdefault("min_dim_size_to_factor", min_dim_size_to_factor)
            group.setdefault("relative_step", relative_step)
            group.setdefault("scale_parameter", scale_parameter)
        self.defaults.update(
            beta1=beta1,
            min_dim_size_to_factor=min_dim_size_to_factor,
            relative_step=relative_step,
            scale_parameter=scale_parameter,
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = run_closure(closure)
        for group in self.param_groups:
            eps1, eps2 = group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaFactor does not support sparse gradients")
                self._update(
                    p,
                    -p.grad if group["maximize"] else p.grad,
                    group,
                    eps2,
                    torch.finfo(p.dtype).eps if eps1 is None else eps1,
                )
        return loss

    def _update(self, p: Tensor, grad: Tensor, group: dict, eps2: float, eps1: float) -> None:
        state = self.state[p]
        factored = grad.dim() > 1 and min(grad.shape[-2:]) >= group["min_dim_size_to_factor"]
        if not state:
            state["step"] = torch.tensor(0.0)
            if factored:
                state["row_var"] = grad.new_zeros(*grad.shape[:-1], 1)  # (..., R, 1)
                state["col_var"] = grad.new_zeros(*grad.shape[:-2], 1, grad.shape[-1])  # (..., 1, C)
            else:
                state["variance"] = torch.zeros_like(grad)
            if group["beta1"] is not None:
                state["exp_avg"] = torch.zeros_like(grad)
        state["step"] += 1
        t = state["step"].item()
        beta2_complement = t ** group["beta2_decay"]  # 1 - beta2_t
        lr = group["lr"]
        rho = min(lr, 1 / math.sqrt(t)) if group["relative_step"] else lr
        alpha = rho * (max(eps2, p.norm().item() / math.sqrt(p.numel())) if group["scale_parameter"] else 1.0)
        if group["weight_decay"]:
            p.mul_(1 - lr * group["weight_decay"])
        if factored:
            row, col = state["row_var"], state["col_var"]
            row.lerp_(grad.square().mean(-1, keepdim=True), beta2_complement)  # (..., R, 1)
            col.lerp_(grad.square().mean(-2, keepdim=True), beta2_complement)  # (..., 1, C)
            variance = row @ col / row.mean(-2, keepdim=True).clamp(min=eps1)  # (..., R, C)
        else:
            state["variance"].lerp_(grad.square(), beta2_complement)
            variance = state["variance"]
        update = grad * variance.clamp(min=eps1 * eps1).rsqrt()
        update /= max(1.0, update.norm().item() / (math.sqrt(update.numel()) * group["d"]))  # clip RMS(u) at d
        if group["beta1"] is not None:
            update = state["exp_avg"].lerp_(update, 1 - group["beta1"])
        p.add_(update, alpha=-alpha)


class OptimizerWrapper(Optimizer):
    """Base of the wrappers: builds the inner optimizer from a spec and shares its ``param_groups``.

    Subclasses override :meth:`before_step` / :meth:`after_step`, which run with gradients already computed
    (the closure is evaluated here, before the inner step). ``optimizer=None`` wraps ``default_optimizer``
    with its defaults (None rather than a class as the default, so that jsonargparse does not carry one
    class's defaults over when the user names another). Wrappers' group keys are prefixed
    (``lookahead_alpha``, ``weight_decay_rate``): torch's own keys (RMSprop's ``alpha``, Adam's
    ``decoupled_weight_decay``) would otherwise win.
    """

    default_optimizer: OptimizerSpec = "torch.optim.AdamW"

    def __init__(self, params: Params, optimizer: OptimizerSpec | None = None, **defaults: Any) -> None:
        self.optimizer = build_optimizer(params, self.default_optimizer if optimizer is None else optimizer)
        # The same group dicts: a scheduler changing the wrapper's lr changes the inner optimizer's.
        super().__init__(self.optimizer.param_groups, {**self.optimizer.defaults, **defaults})
        self.optimizer.param_groups = self.param_groups

    def before_step(self) -> None:
        """Called with fresh gradients, before the inner optimizer steps."""

    def after_step(self) -> None:
        """Called after the inner optimizer stepped."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Evaluate ``closure`` (forward + backward), then ``before_step``, the inner step, ``after_step``."""
        loss = run_closure(closure)
        self.before_step()
        self.optimizer.step()
        self.after_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"wrapper": super().state_dict(), "inner": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["inner"])
        super().load_state_dict(state_dict["wrapper"])
        self.optimizer.param_groups = self.param_groups  # loading made new group dicts: share them again

    def _with_grad(self) -> Iterable[tuple[dict, Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p


class DecoupledWeightDecay(OptimizerWrapper):
    """Weight decay outside the gradient, ``theta <- theta - lr * weight_decay * theta`` before the inner step
    (AdamW's rule for any optimizer; https://kexue.fm/archives/7094).

    Args:
        optimizer: the wrapped optimizer's spec (default ``torch.optim.Adam``: together, AdamW).
        weight_decay: the rate; a param group may set its own ``weight_decay_rate``.
        exclude_1d: leave biases and norm scales (tensors of fewer than 2 dims) undecayed.
    """

    default_optimizer = "torch.optim.Adam"

    def __init__(
        self,
        params: Params,
        optimizer: OptimizerSpec | None = None,
        weight_decay: float = 0.01,
        exclude_1d: bool = True,
    ) -> None:
        super().__init__(params, optimizer, weight_decay_rate=weight_decay, decay_exclude_1d=exclude_1d)

    def before_step(self) -> None:
        for group, p in self._with_grad():
            if group["decay_exclude_1d"] and p.dim() < 2:
                continue
            p.mul_(1 - group["lr"] * group["weight_decay_rate"])


class LayerAdaptation(OptimizerWrapper):
    """LAMB-style trust ratio for any optimizer (https://kexue.fm/archives/7094).

    With ``delta = lr * u`` the inner optimizer's step for one tensor, the applied step is ``lr * u * ||theta|| /
    ||u||``: every tensor moves by ``lr`` times its own norm, whatever the gradient's scale. A zero norm on
    either side leaves the step as it is.

    Args:
        optimizer: the wrapped optimizer's spec (default ``torch.optim.Adam``: together, LAMB).
        exclude_1d: leave tensors of fewer than 2 dims (biases, norm scales) unadapted.
    """

    default_optimizer = "torch.optim.Adam"

    def __init__(self, params: Params, optimizer: OptimizerSpec | None = None, exclude_1d: bool = False) -> None:
        super().__init__(params, optimizer, adapt_exclude_1d=exclude_1d)

    def before_step(self) -> None:
        for group, p in self._with_grad():
            if not (group["adapt_exclude_1d"] and p.dim() < 2):
                self.state[p]["previous"] = p.detach().clone()

    def after_step(self) -> None:
        for group, p in self._with_grad():
            old = self.state[p].pop("previous", None)
            if old is None:
                continue
            delta = p - old
            theta_norm, u_norm = old.norm().item(), delta.norm().item() / max(group["lr"], 1e-12)
            if theta_norm > 0 and u_norm > 0:
                p.copy_(old + delta * (theta_norm / u_norm))


class Lookahead(OptimizerWrapper):
    """Lookahead (https://kexue.fm/archives/7094): every ``k`` inner steps, ``slow += alpha * (fast - slow)``
    and the fast weights restart from ``slow``.

    Args:
        optimizer: the wrapped (fast) optimizer's spec.
        k: inner steps between synchronisations.
        alpha: step of the slow weights towards the fast ones.
    """

    def __init__(self, params: Params, optimizer: OptimizerSpec | None = None, k: int = 5, alpha: float = 0.5) -> None:
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead needs k >= 1 and 0 < alpha <= 1, got k={k}, alpha={alpha}")
        super().__init__(params, optimizer, lookahead_k=k, lookahead_alpha=alpha)

    def before_step(self) -> None:
        for _, p in self._with_grad():
            state = self.state[p]
            if not state:  # the slow weights start where training starts
                state["slow"], state["count"] = p.detach().clone(), 0

    def after_step(self) -> None:
        for group, p in self._with_grad():
            state = self.state[p]
            state["count"] += 1
            if state["count"] % group["lookahead_k"] == 0:
                state["slow"].lerp_(p, group["lookahead_alpha"])
                p.copy_(state["slow"])


class LazyUpdates(OptimizerWrapper):
    """Lazy optimisation (https://kexue.fm/archives/7094): rows (along dim 0) whose gradient is all zero keep
    their values, so momentum does not move embedding rows of tokens absent from the batch.

    Only the parameters change lazily: the inner optimizer's moments still decay, as in the post. Tensors of
    fewer than 2 dims are updated as usual; in practice only embedding tables have all-zero gradient rows.

    Args:
        optimizer: the wrapped optimizer's spec.
    """

    def __init__(self, params: Params, optimizer: OptimizerSpec | None = None) -> None:
        super().__init__(params, optimizer)

    def before_step(self) -> None:
        for _, p in self._with_grad():
            if p.dim() < 2 or p.grad.is_sparse:
                continue
            idle = (p.grad.flatten(1) == 0).all(1).nonzero().squeeze(1)  # (R_idle,) rows absent from the batch
            self.state[p]["idle"] = (idle, p[idle].clone())  # (R_idle,), (R_idle, ...)

    def after_step(self) -> None:
        for _, p in self._with_grad():
            idle = self.state[p].pop("idle", None)
            if idle is not None:
                p[idle[0]] = idle[1]


class PiecewiseLinearLR(LRScheduler):
    """Learning rate ``lr * f(step)`` with ``f`` piecewise linear through ``schedule`` points, constant after the
    last (https://kexue.fm/archives/7094); e.g. ``{0: 0.0, 1000: 1.0, 10000: 0.1}`` warms up then decays.

    Steps are optimizer steps: the CLI runs this scheduler every step (``interval = "step"``).

    Args:
        optimizer: the optimizer whose groups' ``lr`` it scales.
        schedule: ``{step: multiplier}``; steps before the first point use the first multiplier.
    """

    interval = "step"

    def __init__(self, optimizer: Optimizer, schedule: dict[int, float] = {0: 1.0}, last_epoch: int = -1) -> None:  # noqa: B006
        if not schedule:
            raise ValueError("PiecewiseLinearLR needs at least one (step, multiplier) point")
        self.points = sorted((int(s), float(m)) for s, m in schedule.items())
        super().__init__(optimizer, last_epoch)

    def multiplier(self, step: int) -> float:
        """``f(step)``, interpolating linearly between the schedule's points."""
        points = self.points
        if step <= points[0][0]:
            return points[0][1]
        for (s0, m0), (s1, m1) in zip(points, points[1:]):
            if step <= s1:
                return m0 + (m1 - m0) * (step - s0) / (s1 - s0)
        return points[-1][1]

    def get_lr(self) -> list[float]:
        return [base * self.multiplier(self.last_epoch) for base in self.base_lrs]


def warmup_linear_decay(optimizer: Optimizer, warmup_steps: int, total_steps: int,
                        decay: bool = True) -> PiecewiseLinearLR:
    """BERT's fine-tuning schedule as a :class:`PiecewiseLinearLR` (https://kexue.fm/archives/7094, and
    bert4keras' fine-tuning scripts, 6915): the rate rises linearly from ``lr / warmup_steps`` at step 0 to ``lr`` at
    step ``warmup_steps - 1`` (no warm-up when 0), then, with ``decay``, falls linearly from ``lr`` at step
    ``warmup_steps`` to 0 at ``total_steps`` and after; else it stays. Stepped once per optimizer step."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps} and "
                         f"{total_steps}")
    # Two points at the peak (w - 1 and w) reproduce both linear pieces exactly; a later key overwrites an earlier
    # equal one, so w = 1 or w = N collapse to the right points.
    points = {0: 1 / warmup_steps, warmup_steps - 1: 1.0} if warmup_steps else {0: 1.0}
    if decay:
        points.update({warmup_steps: 1.0, total_steps: 0.0})
    return PiecewiseLinearLR(optimizer, points)
