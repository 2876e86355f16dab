"""kexue.distributed under 2-process DDP (CPU, gloo). VectorQuantizer's training-time state: every process ends with
the same codebook, and the EMA codebook is the one-process update on both processes' vectors (kexue.fm/archives/6760).
Evaluation rows gathered in dataset order, the sampler's padding dropped (the GAN's Fréchet distance, 5716).

Each rank quantises different vectors and seeds its own RNG differently, so a per-process EMA step, data
initialisation or dead-code restart would leave the ranks with different codebooks (checked: the test can fail).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DistributedSampler

from kexue.distributed import gather_in_dataset_order
from kexue.nn.quantize import VectorQuantizer
from kexue.tests.helpers import run_in_process_group

WORLD = 2


def _vectors(rank: int) -> torch.Tensor:
    """``(2, 3, 2, 2)`` encoder outputs of one rank: rank 1's sit far from rank 0's."""
    return torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(rank)) + 5.0 * rank


def _quantizers() -> dict[str, VectorQuantizer]:
    torch.manual_seed(0)  # the same initial codebook on every rank, as DDP's first broadcast would make it
    return {"ema": VectorQuantizer(num_codes=4, code_dim=3, ema=True, decay=0.5, restart_after=0, data_init=False),
            "init_and_restart": VectorQuantizer(num_codes=4, code_dim=3, restart_after=1, data_init=True)}


def _states(quantizers: dict[str, VectorQuantizer], rank: int) -> dict[str, dict[str, Any]]:
    """Each quantiser's state (numpy: tensors would be shared by file descriptor, gone when the worker exits) after
    3 training forwards of ``rank``'s vectors (-1: all ranks' vectors in one process)."""
    torch.manual_seed(100 + rank)  # the ranks' random picks differ unless rank 0's are broadcast
    for vq in quantizers.values():
        vq.train()
        for _ in range(3):
            vq(_vectors(rank) if rank >= 0 else torch.cat([_vectors(r) for r in range(WORLD)]))
    return {name: {k: v.numpy().copy() for k, v in vq.state_dict().items()} for name, vq in quantizers.items()}


def _gathered(rank: int) -> list[list[float]]:
    data = torch.arange(7 * 2, dtype=torch.float32).view(7, 2)  # (N = 7, 2): odd, so the sampler pads rank 1
    idx = list(DistributedSampler(range(7), num_replicas=WORLD, rank=rank, shuffle=False))  # [0, 2, 4, 6] / [1, 3, 5, 0]
    return gather_in_dataset_order(data[idx], total=7).tolist()


def _worker(rank: int) -> dict[str, Any]:
    return {"states": _states(_quantizers(), rank), "gathered": _gathered(rank)}


@pytest.fixture(scope="module")
def group() -> dict[int, dict[str, Any]]:
    """Each rank's results from one 2-process gloo group (one spawn for the module: it costs seconds)."""
    return run_in_process_group(_worker, WORLD)


def test_codebook_state_is_shared_by_the_processes(group: dict[int, dict[str, Any]]) -> None:
    results = {rank: out["states"] for rank, out in group.items()}
    for name in ("ema", "init_and_restart"):
        for key, value in results[0][name].items():
            torch.testing.assert_close(torch.as_tensor(results[1][name][key]), torch.as_tensor(value), msg=f"{name}.{key} differs between ranks")
    assert int(results[0]["init_and_restart"]["restarts"]) > 0  # restarts happened, and identically
    # The EMA step sums the code counts and vector sums over the processes: the one-process step on all vectors.
    single = _states({"ema": _quantizers()["ema"]}, rank=-1)["ema"]
    for key in ("codebook", "cluster_size", "embed_sum"):
        torch.testing.assert_close(torch.as_tensor(results[0]["ema"][key]), torch.as_tensor(single[key]), msg=key)


def test_evaluation_rows_gather_in_dataset_order_without_the_padding(group: dict[int, dict[str, Any]]) -> None:
    expected = torch.arange(14, dtype=torch.float32).view(7, 2).tolist()
    assert group[0]["gathered"] == group[1]["gathered"] == expected
