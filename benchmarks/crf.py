"""`kexue.nn.ConditionalRandomField` beside pytorch-crf on the same tensors: NLL forward+backward time,
Viterbi decode time, and how far the log-likelihoods and paths differ.

Both get the same parameters, float32 emissions (B=64, T=128), a random ragged mask, CPU. Timings are
medians over repeats after warm-up, ours and theirs interleaved so that load on the machine hits both.

Usage: python benchmarks/crf.py [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torchcrf

from _report import machine, write_section
from kexue.nn.crf import ConditionalRandomField

B, T = 64, 128


def median_ms(fns: list[Callable[[], None]], repeats: int, warmup: int = 2) -> list[float]:
    """Median wall time of each function in milliseconds, the functions run in turn."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(warmup + repeats):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            if i >= warmup:
                ts.append((time.perf_counter() - start) * 1000)
    return [statistics.median(ts) for ts in times]


def compare(num_tags: int, repeats: int) -> str:
    torch.manual_seed(num_tags)
    ours = ConditionalRandomField(num_tags)
    theirs = torchcrf.CRF(num_tags, batch_first=True)
    theirs.load_state_dict(ours.state_dict())  # same parameter names
    emissions = torch.randn(B, T, num_tags).requires_grad_()  # (B, T, K)
    tags = torch.randint(num_tags, (B, T))  # (B, T)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)

    def nll(crf: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            emissions.grad = None
            crf.zero_grad(set_to_none=True)
            (-crf(emissions, tags, mask, reduction="sum")).backward()
        return run

    def decode(crf: torch.nn.Module) -> Callable[[], None]:
        return lambda: crf.decode(emissions.detach(), mask)

    nll_ours, nll_theirs = median_ms([nll(ours), nll(theirs)], repeats)
    dec_ours, dec_theirs = median_ms([decode(ours), decode(theirs)], repeats)
    with torch.no_grad():
        diff = (ours(emissions, tags, mask, "none") - theirs(emissions, tags, mask, "none")).abs().max().item()
    paths = [row[row >= 0].tolist() for row in ours.decode(emissions.detach(), mask)]
    same = sum(p == q for p, q in zip(paths, theirs.decode(emissions.detach(), mask)))
    return (f"| {num_tags} | {nll_ours:.1f} | {nll_theirs:.1f} | {nll_ours / nll_theirs:.2f}x "
            f"| {dec_ours:.1f} | {dec_theirs:.1f} | {dec_ours / dec_theirs:.2f}x | {diff:.1e} | {same}/{B} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: at these sizes each op is tiny, and on a shared machine "
                             "multi-threaded reductions mostly measure contention)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [compare(k, args.repeats) for k in (4, 17)]
    body = "\n".join([
        "## CRF vs pytorch-crf",
        "",
        f"`python benchmarks/crf.py` (pytorch-crf {getattr(torchcrf, '__version__', '?')}): B={B}, T={T}, float32, "
        f"random ragged mask, same parameters; median of {args.repeats} runs after 2 warm-up runs.",
        f"Machine: {machine()}.",
        "",
        "| K | NLL fwd+bwd ours (ms) | pytorch-crf (ms) | ratio | decode ours (ms) | pytorch-crf (ms) | ratio "
        "| max abs diff of log-likelihood | same best paths |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Ours computes the gold-path score without a loop over time and the Viterbi back-tracking with one "
        "`gather` per step for the whole batch; pytorch-crf loops over time for the score and over sequences "
        "and steps in Python for the back-tracking.",
    ])
    write_section("crf", body)


if __name__ == "__main__":
    main()
