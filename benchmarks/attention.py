"""`kexue.nn.MultiHeadAttention` beside `torch.nn.MultiheadAttention` with the same weights: forward+backward time,
the memory autograd keeps for backward (and peak CUDA memory on a GPU), and the largest output difference.

Shapes of the issue: B=32, T=128, d=256, h=8, float32. Three cases: no mask, a key-padding mask (random lengths),
causal. Timings are medians over repeats after warm-up, ours and theirs interleaved so that load hits both.

Usage: python benchmarks/attention.py [--repeats N] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import torch
from crf import median_ms
from torch import nn

from _report import machine, write_section
from kexue.nn import MultiHeadAttention, causal_mask
from kexue.tricks import saved_tensor_bytes

B, T, D, H = 32, 128, 256, 8


def pair(device: str) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    ours, theirs = MultiHeadAttention(D, H).to(device), nn.MultiheadAttention(D, H, batch_first=True).to(device)
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.in_proj_weight)
        ours.qkv.bias.copy_(theirs.in_proj_bias)
        ours.out.load_state_dict(theirs.out_proj.state_dict())
    return ours, theirs


def compare(case: str, repeats: int, device: str) -> list[str]:
    ours, theirs = pair(device)
    x = torch.randn(B, T, D, device=device, requires_grad=True)  # (B, T, D)
    lengths = torch.randint(T // 2, T + 1, (B,), device=device)
    valid = torch.arange(T, device=device)[None] < lengths[:, None]  # (B, T)
    causal = causal_mask(T, device=device)  # (T, T)
    ours_kw = {"none": {}, "padding": {"mask": valid[:, None, None]}, "causal": {"causal": True}}[case]
    theirs_kw = {"none": {}, "padding": {"key_padding_mask": ~valid},
                 "causal": {"attn_mask": ~causal, "is_causal": True}}[case]

    def step(module: nn.Module, call) -> callable:  # noqa: ANN001
        def run() -> None:
            x.grad = None
            module.zero_grad(set_to_none=True)
            call().sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()
        return run

    call_ours = lambda: ours(x, **ours_kw)
    call_theirs = lambda: theirs(x, x, x, need_weights=False, **theirs_kw)[0]
    ms_ours, ms_theirs = median_ms([step(ours, call_ours), step(theirs, call_theirs)], repeats)
    diff = (call_ours() - call_theirs()).abs().max().item()
    mem = []
    for call in (call_ours, call_theirs):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            call().sum().backward()
            mem.append(torch.cuda.max_memory_allocated() / 2**20)
        else:
            mem.append(saved_tensor_bytes(call) / 2**20)
    return [f"| {case} | {ms_ours:.1f} | {ms_theirs:.1f} | {ms_ours / ms_theirs:.2f}x | {mem[0]:.1f} | {mem[1]:.1f} "
            f"| {diff:.1e} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = machine()
    memory = "peak CUDA MiB" if args.device == "cuda" else "saved for backward, MiB"
    rows = [f"| mask | ours ms | torch ms | ours / torch | ours {memory} | torch {memory} | max abs diff |",
            "|---|---|---|---|---|---|---|"]
    for case in ("none", "padding", "causal"):
        rows += compare(case, args.repeats, args.device)
    body = "\n".join([
        f"## Attention vs torch.nn.MultiheadAttention ({args.device})", "",
        f"Command: `python benchmarks/attention.py --repeats {args.repeats} --threads {args.threads} --device "
        f"{args.device}` ({where}).",
        f"Forward + backward of one layer, B={B}, T={T}, d={D}, h={H}, float32, same weights; median of "
        f"{args.repeats} after 2 warm-up steps, the two interleaved. Both call SDPA underneath; ours adds the "
        "mask handling of kexue.nn.attention (a fully masked row attends everywhere instead of giving NaN).", "",
        *rows, "",
    ])
    write_section(f"attention_{args.device}", body)


if __name__ == "__main__":
    main()
