"""Task `flow` (i-ResNet, kexue.fm/archives/6482): test NLL beside scikit-learn's GaussianMixture and KernelDensity.

Every kexue row is a real `kexue run flow` (checkpoint on val/nll, then test), wall time including start-up. The
peers are fitted in the same run on the same split (ImageDataModule, split_seed 0): the bandwidth / number of
components (and GMM covariance type) chosen on the val split, then scored on test. Units: nats per point for the 2-D
sets; bits/dim for images, where the peers see the dequantised images exactly as the flow does (train: one uniform
draw; val and test: the same per-batch noise as FlowModel's evaluation) and their density on [0, 1)^D goes through the
same `kexue.nn.flows.bits_per_dim`.

Usage: python benchmarks/flow.py [--datasets moons digits mnist5k] [--epochs N] [--extra=ARG ...]
(--epochs overrides every dataset's epoch budget: the reduced run; the full run is the defaults.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _report import machine, run_kexue, test_metrics, write_section

PRESETS = {"moons": [], "circles": ["--data.dataset=circles"], "digits": ["--config", "flow_digits"],
           "mnist5k": ["--config", "flow_mnist5k"]}
LOGDET_PATH = {"moons": "exact (slogdet of the 2 × 2 Jacobians), training and test",
               "circles": "exact (slogdet of the 2 × 2 Jacobians), training and test",
               "digits": "estimated in training (5 terms, 1 probe); exact at test (64 ≤ exact_max_dim)",
               "mnist5k": "estimated: training 5 terms, test 20 terms, 1 Rademacher probe per image"}
# Where the test log-det is the truncated series: a second test of the best checkpoint with this many terms bounds
# the tail (with Lip(g) <= 0.9 the worst case is D * Σ_{k>20} 0.9^k / k per block, 0.45 bits/dim for 8 blocks at 20
# terms, 0.003 at 60; the measured gap is what the table shows).
TRUNCATION_CHECK = {"mnist5k": 60}
BANDWIDTHS = {"points": [0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3], "images": [0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2]}
COMPONENTS = {"points": [2, 4, 8, 16, 32, 64], "images": [1, 2, 5, 10]}


def dequantised_splits(name: str) -> tuple[dict[str, np.ndarray], int, int]:
    """``({split: (N, D) float64}, levels, D)``: points as they are; images dequantised as the flow sees them."""
    from kexue.datamodules.images import ImageDataModule
    from kexue.nn.flows import dequantize

    data = ImageDataModule(dataset=name, batch_size=128 if name in ("moons", "circles") else 64)
    data.setup("fit")
    levels, out = data.levels, {}
    for split in ("train", "val", "test"):
        x = data.splits[split][0]
        if levels:
            if split == "train":
                x = dequantize(x, levels, torch.Generator().manual_seed(12345))
            else:  # FlowModel._evaluate: batch b of the loader gets Generator().manual_seed(b)
                x = torch.cat([dequantize(chunk, levels, torch.Generator().manual_seed(b))
                               for b, chunk in enumerate(x.split(data.hparams.batch_size))])
        out[split] = x.flatten(1).double().numpy()
    return out, levels, out["train"].shape[1]


def peers(splits: dict[str, np.ndarray], images: bool) -> dict[str, tuple[float, str, float]]:
    """``{peer: (test NLL in nats per example, chosen setting, seconds)}`` with the setting chosen on val."""
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KernelDensity

    kind = "images" if images else "points"
    out = {}
    start = time.perf_counter()
    scores = {bw: -KernelDensity(bandwidth=bw).fit(splits["train"]).score_samples(splits["val"]).mean()
              for bw in BANDWIDTHS[kind]}
    bw = min(scores, key=scores.get)
    test = -KernelDensity(bandwidth=bw).fit(splits["train"]).score_samples(splits["test"]).mean()
    out["KernelDensity (Gaussian kernel)"] = (float(test), f"bandwidth {bw}", time.perf_counter() - start)
    start = time.perf_counter()
    best = None
    for cov in ("full", "diag"):
        for k in COMPONENTS[kind]:
            gmm = GaussianMixture(k, covariance_type=cov, reg_covar=1e-4 if images else 1e-6, max_iter=200,
                                  random_state=0).fit(splits["train"])
            val = -gmm.score_samples(splits["val"]).mean()
            print(f"  GMM {cov} {k}: val {val:.4f}", file=sys.stderr, flush=True)
            if best is None or val < best[0]:
                best = (val, gmm, f"{k} components, {cov} covariance")
    test = -best[1].score_samples(splits["test"]).mean()
    out["GaussianMixture"] = (float(test), best[2], time.perf_counter() - start)
    return out


def rows(name: str, args: argparse.Namespace, workdir: Path) -> list[str]:
    """The table rows of one dataset: the flow, then the peers."""
    from kexue.nn.flows import bits_per_dim

    splits, levels, D = dequantised_splits(name)
    extra = [*PRESETS[name], *([f"--trainer.max_epochs={args.epochs}"] if args.epochs else []), *args.extra]
    proc, seconds = run_kexue(["run", "flow", "--logger", "csv", "--trainer.enable_progress_bar=false",
                               f"--seed_everything={args.seed}", *extra], workdir)
    metrics = test_metrics(proc.stdout)
    print(name, metrics, f"{seconds:.0f}s", file=sys.stderr, flush=True)

    def cell(nll: float) -> str:
        return f"{nll:.3f} | {bits_per_dim(nll, D, levels):.3f}" if levels else f"{nll:.3f} | —"

    size = f"{len(splits['train'])} / {len(splits['val'])} / {len(splits['test'])} × {D}"
    out = [f"| {name} | {size} | **kexue i-ResNet** | {cell(metrics['test/nll'])} | {LOGDET_PATH[name]}; "
           f"`{' '.join(extra) or 'defaults'}` | {seconds:.0f} |"]
    if name in TRUNCATION_CHECK:  # the series' tail: the same checkpoint, probes and noise, 20 vs 60 terms
        checkpoint = max(workdir.glob("runs/flow/*/checkpoints/best-*.ckpt"), key=lambda f: f.stat().st_mtime)
        for terms in (20, TRUNCATION_CHECK[name]):
            proc, sec = run_kexue(["test", "flow", *PRESETS[name], "--logger", "none", "--ckpt_path", str(checkpoint),
                                   "--trainer.enable_progress_bar=false", f"--seed_everything={args.seed}",
                                   f"--model.eval_terms={terms}"], workdir)
            nll = test_metrics(proc.stdout)["test/nll"]
            print(name, f"{terms} terms: {nll}", file=sys.stderr, flush=True)
            out.append(f"| {name} | {size} | kexue i-ResNet, the same checkpoint | {cell(nll)} | truncation check: "
                       f"`kexue test` with {terms} series terms (same probes and noise) | {sec:.0f} |")
    for peer, (nll, setting, sec) in peers(splits, bool(levels)).items():
        out.append(f"| {name} | {size} | {peer} | {cell(nll)} | {setting} (chosen on val) | {sec:.0f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["moons", "digits", "mnist5k"])
    parser.add_argument("--epochs", type=int, default=0, help="override every dataset's max_epochs (reduced run)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--extra", action="append", default=[], help="one more `kexue run` arg (repeat), --extra=ARG")
    args = parser.parse_args()
    table: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            table += rows(name, args, Path(tmp))
            write_section("flow", report(args, table))


def report(args: argparse.Namespace, table: list[str]) -> str:
    """The BENCHMARKS.md section."""
    command = (f"python benchmarks/flow.py --datasets {' '.join(args.datasets)}"
               + (f" --epochs {args.epochs}" if args.epochs else "") + "".join(f" --extra={a}" for a in args.extra))
    return "\n".join([
        "## flow" + (f" (reduced run: {args.epochs} epochs per set)" if args.epochs else ""),
        "",
        f"Command: `{command}` ({machine()}; the machine is shared, compare wall times within one table only).",
        "Test negative log-likelihood on ImageDataModule's fixed split (split_seed 0). Points: nats per point of the",
        "standardised 2-D data. Images: nats per image of the dequantised density on [0, 1)^D and bits/dim of the",
        f"discrete images, `(nll + D ln(levels)) / (D ln 2)`; uniform on every pixel would be log2(levels) "
        f"(4.09 for digits' 17 levels, 8 for MNIST's 256). Peers: scikit-learn, fitted in the same run (`{Path(__file__).name}`).",
        "",
        "| set | train / val / test × D | model | test NLL (nats) | bits/dim | log-det path / setting | wall time (s) |",
        "|---|---|---|---|---|---|---|",
        *table,
    ])


if __name__ == "__main__":
    main()
