"""Recompute (kexue.fm/archives/7367): peak memory and step time of a deep Transformer encoder, with and without
``kexue.tricks.Recompute`` wrapping each layer (the code path of ``--config recompute``), and with its
``keep_last`` leaving the last k layers un-checkpointed.

Memory: each config in its own fresh subprocess per round, the peak RSS during one training step (the kernel's
high-water mark, reset just before) minus the RSS just before, with large blocks mmap'd so RSS follows the
tensors, beside the exact bytes autograd saved for backward (``saved_tensors_hooks``). Time: one fresh process per
round with the default allocator holds every config's model (same initial weights) and steps them in turn, so a
slow spell of a shared machine hits all configs alike; the median over all rounds.

Usage: python benchmarks/recompute.py [--depth 16] [--rounds 3] [--steps 5] [--batch 8] [--keep-last 3]
    [--save attention,down_proj]
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
from kexue.tricks import saved_tensor_bytes

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


Config = tuple[int, tuple[str, ...]] | None  # (keep_last, save) of wrap_recompute, None for no recompute


def make(depth: int, config: Config) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The encoder (seeded: every config starts from the same weights) with recompute unless ``config`` is None."""
    torch.manual_seed(0)
    model = build(depth).train()
    if config is not None:
        from kexue.tricks import wrap_recompute

        wrap_recompute(model, "layers.*", *config)
    return model, torch.optim.SGD(model.parameters(), lr=1e-3)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
    """One SGD step; ``zero_grad`` sets the gradients to None (Lightning's default), so the step allocates them."""
    opt.zero_grad()
    model(inputs).pow(2).mean().backward()
    opt.step()


def memory_child(depth: int, config: Config) -> dict:
    torch.set_num_threads(1)
    model, opt = make(depth, config)
    x = torch.randn(SHAPE["batch"], SHAPE["seq"], SHAPE["d_model"])
    train_step(model, opt, x[:1, :8])  # warm up libraries and the allocator on a tiny batch
    opt.zero_grad()
    reset_peak_rss()
    before = rss_bytes()
    train_step(model, opt, x)
    peak = peak_rss_bytes() - before
    saved = saved_tensor_bytes(lambda: model(x).pow(2).mean().backward())
    grads = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"peak": peak, "saved": saved, "grads": grads}


def timing_child(depth: int, configs: list[Config], steps: int) -> dict:
    torch.set_num_threads(1)  # one thread: CPU time measures the work, whatever else loads the machine
    models = [make(depth, k) for k in configs]
    x = torch.randn(SHAPE["batch"], SHAPE["seq"], SHAPE["d_model"])
    for model, opt in models:
        train_step(model, opt, x)  # warm up
    times: list[list[float]] = [[] for _ in configs]
    cpu: list[list[float]] = [[] for _ in configs]
    for _ in range(steps):
        for i, (model, opt) in enumerate(models):  # in turn: load spells hit every config
            start, start_cpu = time.perf_counter(), time.process_time()
            train_step(model, opt, x)
            times[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return {"times": times, "cpu": cpu}


def label(config: Config) -> str:
    if config is None:
        return "plain"
    keep_last, save = config
    return "recompute" + (f", keep_last={keep_last}" if keep_last else "") + (f", save={list(save)}" if save else "")


def encode(config: Config) -> str:
    return "plain" if config is None else f"{config[0]}:{'+'.join(config[1])}"


def decode(text: str) -> Config:
    if text == "plain":
        return None
    keep_last, save = text.split(":")
    return int(keep_last), tuple(s for s in save.split("+") if s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--batch", type=int, default=SHAPE["batch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--keep-last", default="3", help="comma-separated keep_last values besides 0")
    parser.add_argument("--save", default="attention,down_proj", help="a save list to measure ('' for none)")
    parser.add_argument("--child", choices=["memory", "timing"])
    parser.add_argument("--configs", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SHAPE["batch"] = args.batch
    keeps = [int(k) for k in args.keep_last.split(",") if k.strip() and int(k) != 0]
    save = tuple(s for s in args.save.split(",") if s)
    configs: list[Config] = [None, (0, ()), *((k, ()) for k in keeps), *([(0, save)] if save else [])]
    if args.child:
        chosen = [decode(c) for c in args.configs.split(",")]
        result = memory_child(args.depth, chosen[0]) if args.child == "memory" else (
            timing_child(args.depth, chosen, args.steps))
        print(json.dumps(result))
        return
    code = ",".join(encode(c) for c in configs)
    base = [sys.executable, __file__, "--depth", str(args.depth), "--steps", str(args.steps), "--batch", str(args.batch)]
    memory: list[list[dict]] = [[] for _ in configs]
    times: list[list[float]] = [[] for _ in configs]
    cpu: list[list[float]] = [[] for _ in configs]
    for _ in range(args.rounds):
        for i, k in enumerate(configs):
            cmd = [*base, "--child", "memory", "--configs", encode(k)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=CHILD_ENV).stdout
            memory[i].append(json.loads(out.strip().splitlines()[-1]))
        out = subprocess.run([*base, "--child", "timing", "--configs", code], capture_output=True, text=True,
                             check=True).stdout
        timed = json.loads(out.strip().splitlines()[-1])
        for i in range(len(configs)):
            times[i] += timed["times"][i]
            cpu[i] += timed["cpu"][i]
    grads = memory[0][0]["grads"] / 2**20
    stats = []
    for i in range(len(configs)):
        peak = statistics.median(r["peak"] for r in memory[i]) / 2**20
        saved = memory[i][0]["saved"] / 2**20
        stats.append((peak, saved, statistics.median(times[i]), statistics.median(cpu[i])))
    p_peak, p_saved, p_step, p_cpu = stats[0]
    rows = [
        f"| {label(k)} | {peak:.1f} | {peak - grads:.1f} | {'n/a' if k and k[1] else f'{saved:.1f}'} "
        f"| {step * 1000:.0f} | {c * 1000:.0f} "
        f"| {p_peak / peak:.2f} | {step / p_step:.2f} | {c / p_cpu:.2f} |"
        for k, (peak, saved, step, c) in zip(configs, stats)
    ]
    shape = ", ".join(f"{k} {v}" for k, v in SHAPE.items())
    flags = "".join([
        f" --batch {args.batch}" if args.batch != 8 else "",
        f" --keep-last {args.keep_last}" if args.keep_last != "3" else "",
        f" --save '{args.save}'" if args.save != "attention,down_proj" else "",
    ])
    body = "\n".join(
        [
            "## Recompute (gradient checkpointing, kexue.fm/archives/7367)",
            "",
            f"`python benchmarks/recompute.py --depth {args.depth} --rounds {args.rounds} --steps {args.steps}"
            f"{flags}` on {machine()}.",
            f"Model: `nn.TransformerEncoder`, {args.depth} layers ({shape}, dropout 0), one SGD step on a "
            '`(batch, seq, d_model)` input with `zero_grad(set_to_none=True)`; `recompute` = '
            '`kexue.tricks.wrap_recompute(model, "layers.*", keep_last, save)`, what `--config recompute` '
            "(`Recompute`'s `keep_last` and `save`) does to a task's encoder. Peak = peak RSS during the step minus RSS before it, with "
            f"`MALLOC_MMAP_THRESHOLD_=131072` so freed tensors leave RSS (median of {args.rounds} fresh processes), "
            f"gradients included ({grads:.1f} MiB, allocated during the step); saved = bytes autograd keeps for "
            "backward (exact; a tensor saved by two ops counts twice, weights count; n/a for `save`, whose kept outputs "
            "bypass autograd's saved tensors). Step = median over "
            f"{args.rounds} fresh processes x {args.steps} steps of each config, the configs' models held in one "
            "process and stepped in turn (default allocator, one torch thread); CPU = its process time.",
            "",
            "| config | peak step memory (MiB) | of which not gradients | saved for backward (MiB) "
            "| step wall (ms) | step CPU (ms) | memory ÷ | wall × | CPU × |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Goal (issue 6): memory down >= 3x at <= 1.35x time. A full recompute adds one forward pass. "
            "`keep_last` skips the recompute of the last layers, whose activations are freed by the backward pass "
            "before the gradients fill memory; `save` keeps the attention kernels' and the narrowing matmuls' "
            "outputs (one `(batch, seq, d_model)` tensor each per layer) and recomputes the rest, through a Python "
            "dispatch mode that costs time per op. Both keep more tensors than a full recompute, which is free only "
            "while they stay under the gradients' memory: compare the batch sizes.",
        ]
    )
    write_section("recompute" if args.batch == 8 else f"recompute_batch{args.batch}", body)


if __name__ == "__main__":
    main()
