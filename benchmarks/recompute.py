"""Recompute (kexue.fm/archives/7367): peak memory and step time of a deep Transformer encoder, with and without
``kexue.callbacks.Recompute`` wrapping each layer (the code path of ``--config recompute``).

Each (config, round) runs in two fresh subprocesses. Memory: the peak RSS during one training step (the kernel's
high-water mark, reset just before) minus the RSS just before, with large blocks mmap'd so RSS follows the
tensors, beside the exact bytes autograd saved for backward (``saved_tensors_hooks``). Time: the median of the
timed steps over all rounds, in a process with the default allocator; the configs alternate so machine load hits
both alike.

Usage: python benchmarks/recompute.py [--depth 16] [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from _report import machine, write_section

# Blocks of 128 KiB and up straight from mmap and back to the kernel when freed: RSS then follows the live
# tensors instead of glibc's heap, which otherwise grows its threshold and keeps freed activations resident.
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
SHAPE = {"batch": 8, "seq": 128, "d_model": 256, "heads": 4, "ff": 1024}


def build(depth: int) -> nn.Module:
    layer = nn.TransformerEncoderLayer(SHAPE["d_model"], SHAPE["heads"], SHAPE["ff"], dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    """Restart the kernel's high-water mark (VmHWM) at the current RSS (Linux: ``echo 5 > clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024  # kB


def child(depth: int, recompute: bool, steps: int) -> dict:
    torch.set_num_threads(1)  # one thread: CPU time measures the work, whatever else loads the machine
    torch.manual_seed(0)
    model = build(depth).train()
    if recompute:
        from kexue.callbacks import wrap_recompute

        wrap_recompute(model, "layers.*")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(SHAPE["batch"], SHAPE["seq"], SHAPE["d_model"])

    def step(inputs: torch.Tensor) -> None:
        opt.zero_grad()
        model(inputs).pow(2).mean().backward()
        opt.step()

    step(x[:1, :8])  # warm up libraries and the allocator on a tiny batch
    opt.zero_grad()  # the step's peak then includes allocating the gradients
    reset_peak_rss()
    before = rss_bytes()
    step(x)
    peak = peak_rss_bytes() - before
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).pow(2).mean().backward()
    times, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step(x)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    grads = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"peak": peak, "saved": saved, "times": times, "cpu": cpu, "grads": grads}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["plain", "recompute"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.depth, args.child == "recompute", args.steps)))
        return
    results: dict[str, list[dict]] = {"plain": [], "recompute": []}
    for _ in range(args.rounds):
        for name in results:
            cmd = [sys.executable, __file__, "--child", name, "--depth", str(args.depth), "--steps", str(args.steps)]
            # Memory from a child with mmap'd large blocks (RSS follows the tensors); time from a child with
            # glibc's default allocator, as users run it.
            memory = subprocess.run(cmd, capture_output=True, text=True, check=True, env=CHILD_ENV).stdout
            timing = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            run = json.loads(memory.strip().splitlines()[-1])
            run.update({k: v for k, v in json.loads(timing.strip().splitlines()[-1]).items() if k in ("times", "cpu")})
            results[name].append(run)
    rows, summary = [], {}
    for name, runs in results.items():
        peak = statistics.median(r["peak"] for r in runs) / 2**20
        saved = runs[0]["saved"] / 2**20
        step = statistics.median(t for r in runs for t in r["times"])
        cpu = statistics.median(t for r in runs for t in r["cpu"])
        grads = runs[0]["grads"] / 2**20
        summary[name] = (peak, saved, step, cpu)
        rows.append(
            f"| {name} | {peak:.0f} | {peak - grads:.0f} | {saved:.1f} | {step * 1000:.0f} | {cpu * 1000:.0f} |"
        )
    (p_peak, p_saved, p_step, p_cpu), (r_peak, r_saved, r_step, r_cpu) = summary["plain"], summary["recompute"]
    shape = ", ".join(f"{k} {v}" for k, v in SHAPE.items())
    body = "\n".join(
        [
            "## Recompute (gradient checkpointing, kexue.fm/archives/7367)",
            "",
            f"`python benchmarks/recompute.py --depth {args.depth} --rounds {args.rounds} --steps {args.steps}` on "
            f"{machine()}.",
            f"Model: `nn.TransformerEncoder`, {args.depth} layers ({shape}, dropout 0), one SGD step on a "
            '`(batch, seq, d_model)` input; `recompute` = `kexue.callbacks.wrap_recompute(model, "layers.*")`, what '
            "`--config recompute` does to a task's encoder. Peak = peak RSS during the step minus RSS before it, "
            "with `MALLOC_MMAP_THRESHOLD_=131072` so freed tensors leave RSS "
            f"(median of {args.rounds} fresh processes), gradients included (fixed: one float per parameter); saved = "
            "bytes autograd keeps for backward (exact, a tensor saved by two ops counts twice); step = "
            f"median wall time of {args.rounds}x{args.steps} steps in other fresh processes with the default allocator "
            "(as users run it), one torch thread; CPU = its process time (steadier than wall time on a shared machine).",
            "",
            "| config | peak step memory (MiB) | of which not gradients (MiB) | saved for backward (MiB) "
            "| step wall (ms) | step CPU (ms) |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Recompute: peak memory / {p_peak / r_peak:.1f} ({(p_peak - grads) / (r_peak - grads):.1f} without the "
            f"gradients), saved activations / {p_saved / r_saved:.1f}, "
            f"step time x {r_step / p_step:.2f} wall, x {r_cpu / p_cpu:.2f} CPU (goal: memory down >= 3x at <= 1.35x time).",
        ]
    )
    write_section("recompute", body)


if __name__ == "__main__":
    main()
