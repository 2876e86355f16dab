"""Optimizer state memory (kexue.fm/archives/7302, /7094): bytes of optimizer state for one 1024x1024 float32
matrix after one step, kexue.optim's optimizers and wrappers beside torch's Adam (the anchor), plus the time
of one step.

Usage: python benchmarks/optim.py [--size 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _report import machine, write_section
from kexue.optim import AdaFactor, DecoupledWeightDecay, LayerAdaptation, LazyUpdates, Lookahead

ADAMW = {"class_path": "torch.optim.AdamW"}
CONFIGS = {
    "torch.optim.Adam (anchor)": lambda p: torch.optim.Adam(p),
    "torch.optim.Adafactor": lambda p: torch.optim.Adafactor(p),
    "kexue.optim.AdaFactor": lambda p: AdaFactor(p),
    "kexue.optim.AdaFactor, beta1=0.9": lambda p: AdaFactor(p, beta1=0.9),
    "Lookahead(AdamW)": lambda p: Lookahead(p, ADAMW),
    "Lookahead(AdaFactor)": lambda p: Lookahead(p, "kexue.optim.AdaFactor"),
    "DecoupledWeightDecay(Adam)": lambda p: DecoupledWeightDecay(p),
    "LayerAdaptation(Adam)": lambda p: LayerAdaptation(p),
    "LazyUpdates(Adam)": lambda p: LazyUpdates(p),
}


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (a wrapper's and its inner optimizer's)."""
    total = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    inner = getattr(opt, "optimizer", None)
    return total + (state_bytes(inner) if inner is not None else 0)


def measure(make, size: int, steps: int = 5) -> tuple[int, float]:
    torch.manual_seed(0)
    w = torch.randn(size, size, requires_grad=True)
    opt = make([w])
    times = []
    for _ in range(steps):
        w.grad = torch.randn(size, size)
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return state_bytes(opt), statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    results = {name: measure(make, args.size) for name, make in CONFIGS.items()}
    anchor = results["torch.optim.Adam (anchor)"][0]
    rows = [f"| {name} | {b:,} | {100 * b / anchor:.2f}% | {t * 1000:.1f} |" for name, (b, t) in results.items()]
    body = "\n".join(
        [
            "## Optimizer state (kexue.fm/archives/7302, /7094)",
            "",
            f"`python benchmarks/optim.py --size {args.size}` on {machine()}.",
            f"State = bytes of all tensors the optimizer keeps for one {args.size}x{args.size} float32 matrix (wrappers: "
            "their own plus the inner optimizer's); step = median time of one step after the first.",
            "",
            "| optimizer | state bytes | vs Adam | step (ms) |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "AdaFactor without momentum keeps a row and a column second moment (2 x 1024 floats) and a step counter; "
            "beta1 adds a full first moment (half of Adam's state). Lookahead adds one copy of the weights.",
        ]
    )
    write_section("optim-state", body)


if __name__ == "__main__":
    main()
