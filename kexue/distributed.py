"""The few ``torch.distributed`` collectives kexue's own code calls, each a no-op in one process.

Lightning does data parallelism (DDP syncs gradients; torchmetrics syncs metric states); these cover state that is
neither: a VQ-VAE codebook's moving averages and restarts (kexue.fm/archives/6760), and evaluation rows a score
needs all at once in dataset order (:func:`gather_in_dataset_order`; the GAN's Fréchet distance, which used it, is
now a sum-state Metric, :class:`kexue.metrics.FrechetDistance`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Processes in the initialised ``torch.distributed`` group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_across_processes(t: Tensor) -> Tensor:
    """``t`` summed in place over the processes (DDP); ``t`` itself in one process. Every process must call it, in
    the same order, with the same shape."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def from_first_process(t: Tensor) -> Tensor:
    """``t`` replaced in place by the first process's ``t`` (same shape everywhere); ``t`` itself in one process."""
    if world_size() > 1:
        dist.broadcast(t, src=0)
    return t


def gather_in_dataset_order(rows: Tensor, total: int) -> Tensor:
    """Every process's evaluation rows ``(n, ...)`` as one ``(min(total, W * n), ...)`` tensor in dataset order.

    For rows produced in loader order under an unshuffled ``DistributedSampler`` (Lightning's for validation and
    test): process ``r`` of ``W`` holds examples ``r, r + W, r + 2W, ...``, the sampler pads the last round with
    repeats of the first examples, and ``total`` (the dataset's length) drops them, so the result equals the one-
    process rows. Raises ValueError if the processes hold different numbers of rows (another sampler)."""
    W = world_size()
    if W == 1:
        return rows
    counts = [torch.zeros((), dtype=torch.long, device=rows.device) for _ in range(W)]
    dist.all_gather(counts, torch.tensor(len(rows), device=rows.device))
    if len({int(c) for c in counts}) != 1:
        raise ValueError(f"processes hold different numbers of evaluation rows {[int(c) for c in counts]}: "
                         "expected an unshuffled DistributedSampler")
    parts = [torch.empty_like(rows) for _ in range(W)]
    dist.all_gather(parts, rows.contiguous())
    return torch.stack(parts, 1).flatten(0, 1)[:total]  # (n, W, ...) -> row j * W + r is example j * W + r


__all__ = ["from_first_process", "gather_in_dataset_order", "sum_across_processes", "world_size"]
