"""No figure on nothing: a score computed on zero items (no evaluation word in the vocabulary, no gold answer, a
stage that never trained) is not a number, so it is logged as NaN (a gap on the dashboard, never a 0) and the
module records why; the CLI prints that reason in place of the figure (``test/wordsim353 not computed: ...``).

A LightningModule calls :func:`log_score` for a score that may have nothing under it, or :func:`not_computed`
where it knows a figure is missing (task vq_vae's prior NLL when the run stopped before the prior's epochs).
The reasons live in the module's ``missing_figures`` dict, keyed by the logged name, which the CLI reads after
``validate`` / ``test``. Posts: every task's metric, e.g. SVD分解(三) (https://kexue.fm/archives/4208) for the
word-similarity coverage, VQ-VAE的简明介绍 (https://kexue.fm/archives/6760) for the prior.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

MISSING_FIGURES = "missing_figures"
"""The attribute of a LightningModule holding ``{logged name: why it is not computed}``."""


def missing_figures(module: nn.Module) -> dict[str, str]:
    """The module's ``{name: reason}`` of figures not computed (made empty on first use)."""
    figures = getattr(module, MISSING_FIGURES, None)
    if figures is None:
        figures = {}
        setattr(module, MISSING_FIGURES, figures)
    return figures


def not_computed(module: Any, name: str, reason: str, **log_options: Any) -> None:
    """Log NaN as ``name`` (so a monitor or a dashboard sees a gap, never a number) and record ``reason``, one
    line saying why the figure is missing, for the CLI to print in its place. ``log_options`` go to ``module.log``."""
    missing_figures(module)[name] = reason
    module.log(name, float("nan"), **log_options)


def log_score(module: Any, name: str, value: float | Tensor, items: int, nothing: str, **log_options: Any) -> None:
    """Log ``value`` as ``name`` when it was computed on ``items`` > 0 items; with no item, :func:`not_computed`
    with the reason ``nothing`` (e.g. ``"no pair has both words in the vocabulary"``).

    Args:
        module: the LightningModule that logs.
        name: the logged name (``"test/wordsim353"``).
        value: the score, a float or a 0-d tensor (ignored when ``items`` is 0).
        items: how many items (pairs, questions, answers, images) the score was computed on.
        nothing: why there is no item, for the line printed instead of the figure.
        log_options: keyword arguments of ``module.log`` (``sync_dist``, ``prog_bar``...).
    """
    if items <= 0:
        not_computed(module, name, nothing, **log_options)
        return
    missing_figures(module).pop(name, None)
    module.log(name, float(value) if not isinstance(value, Tensor) else value, **log_options)


def figure_line(name: str, value: float, missing: dict[str, str]) -> str:
    """The CLI's line for a logged figure: ``name value`` to 4 decimals, or ``name not computed: why``."""
    if name in missing:
        return f"{name} not computed: {missing[name]}"
    return f"{name} {value:.4f}"


__all__ = ["MISSING_FIGURES", "figure_line", "log_score", "missing_figures", "not_computed"]
