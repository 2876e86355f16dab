"""Figures for the dashboard: logged to W&B when it is the logger, always saved as PNG in the run dir."""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch


def log_figure(trainer: Any, key: str, figure: Any) -> str | None:
    """Log a matplotlib ``figure`` under ``key`` on every logger that takes images; return the PNG path.

    The PNG goes to ``<trainer.default_root_dir>/figures/<key>.png`` (``/`` in ``key`` becomes ``_``; the CLI
    makes that the run's own directory) so a run with ``--logger csv`` keeps its figures too. Rank zero only, and
    safe to call from any subset of ranks: ``trainer.log_dir`` would broadcast, and a broadcast on rank 0 alone
    hangs or breaks a DDP run.
    """
    import matplotlib.pyplot as plt

    if not trainer.is_global_zero:
        plt.close(figure)
        return None
    path = None
    if trainer.default_root_dir:
        os.makedirs(os.path.join(trainer.default_root_dir, "figures"), exist_ok=True)
        path = os.path.join(trainer.default_root_dir, "figures", key.replace("/", "_") + ".png")
        figure.savefig(path, dpi=100, bbox_inches="tight")
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # WandbLogger; CSVLogger has no image support
            logger.log_image(key=key, images=[figure], step=trainer.global_step)
    plt.close(figure)
    return path


def confusion_matrix_figure(matrix: torch.Tensor, labels: Sequence[str], title: str = "") -> Any:
    """A matplotlib figure of a ``(C, C)`` confusion matrix (rows = true class, columns = predicted)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    m = matrix.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:g}", ha="center", va="center", color="black" if m[i, j] < m.max() / 2 else "white")
    ax.set_title(title)
    return fig


def log_confusion_matrix(trainer: Any, key: str, metric: Any, labels: Sequence[str]) -> str | None:
    """Compute (synced across ranks) and reset a torchmetrics confusion-matrix ``metric``, and log its figure
    under ``key`` with :func:`log_figure`; returns what :func:`log_figure` returns."""
    matrix = metric.compute()  # (C, C)
    metric.reset()
    return log_figure(trainer, key, confusion_matrix_figure(matrix, labels))


def image_grid_figure(images: torch.Tensor, columns: int = 8, title: str = "") -> Any:
    """A matplotlib figure of grey images ``(N, 1, H, W)`` or ``(N, H, W)`` with values in [0, 1], ``columns`` a
    row: the sample and reconstruction grids of the generative tasks (kexue.fm/archives/6482, 6760, 5716)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = images.detach().float().cpu().clamp(0, 1).reshape(images.shape[0], *images.shape[-2:])  # (N, H, W)
    rows = max(1, -(-len(x) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + (0.3 if title else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(x):
            ax.imshow(x[k].numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig
