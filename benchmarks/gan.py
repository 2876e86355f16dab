"""Task `gan`: the plain GAN (λ = 0) vs the post's regulariser (λ = 5) vs the VAE baseline, same seeds, one run.

Post: 用变分推断统一理解生成模型 (https://kexue.fm/archives/5716). Every row is a real `kexue run gan` /
`kexue run gan_vae` on MNIST-5k (the best checkpoint by val/fid is tested), scored by the judge classifier trained
here (kexue.models.judge): IS-like = exp E[KL(p(y|x) || p(y))] of 500 samples (10 at best), FID-like = Fréchet distance
of the judge's 128 features of the samples vs the 500 test images. Reference rows score real images the same way: the
test images' own IS and the FID of 500 training images vs the test images (the floor a perfect generator reaches).
Stability: the spread of val/fid over the last half of the epochs of each run.

Usage: python benchmarks/gan.py [--epochs 10] [--seeds 42 43 44] [--reg 5.0]
Reduced run (labelled so): python benchmarks/gan.py --epochs 3 --seeds 42
Longer run (its own section, gan_30_epochs): python benchmarks/gan.py --epochs 30
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import machine, run_kexue, test_metrics, write_section

DEFAULT_EPOCHS, DEFAULT_SEEDS = 10, (42, 43, 44)


def val_fid_curve(workdir: Path, task: str) -> list[float]:
    """val/fid per epoch of the newest run of ``task`` under ``workdir`` (its metrics.csv)."""
    run = sorted((workdir / "runs" / task).iterdir())[-1]
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["val/fid"]) for r in csv.DictReader(f) if r.get("val/fid")]


def reference_rows() -> dict[str, tuple[float, float]]:
    """(IS, FID) of real images under the judge: the test images themselves, and 500 training images vs them."""
    import torch

    from kexue.metrics.images import frechet_distance, inception_score
    from kexue.models.judge import judge_classifier, judge_splits

    judge = judge_classifier("mnist5k")
    splits = judge_splits("mnist5k")
    with torch.no_grad():
        f_test, l_test = judge.features_and_logits(splits["test"][0])
        f_train, l_train = judge.features_and_logits(splits["train"][0][:500])
    return {"real test images": (float(inception_score(l_test.softmax(-1))), float(frechet_distance(f_test, f_test))),
            "real train images (500) vs test": (float(inception_score(l_train.softmax(-1))),
                                                float(frechet_distance(f_train, f_test))),
            "judge test accuracy": (judge.test_accuracy, float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--reg", type=float, default=5.0, help="λ of the regularised GAN (the post's code: 5)")
    args = parser.parse_args()
    start = time.perf_counter()
    reduced = args.epochs < DEFAULT_EPOCHS or len(args.seeds) < len(DEFAULT_SEEDS)
    longer = args.epochs > DEFAULT_EPOCHS and not reduced  # its own section: the full run's table stays
    variants = {"GAN, λ = 0 (plain)": ("gan", ["--model.reg_weight=0"]),
                f"GAN, λ = {args.reg:g} (post's regulariser)": ("gan", [f"--model.reg_weight={args.reg}"]),
                "VAE baseline": ("gan_vae", [])}
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in variants}
    refs = reference_rows()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, (task, extra) in variants.items():
                workdir = Path(tmp) / f"{task}-{seed}-{len(results[name])}-{abs(hash(name)) % 1000}"
                workdir.mkdir()
                proc, seconds = run_kexue(["run", task, "--logger", "csv", "--trainer.enable_progress_bar=false",
                                           f"--seed_everything={seed}", f"--trainer.max_epochs={args.epochs}", *extra],
                                          workdir)
                metrics, curve = test_metrics(proc.stdout), val_fid_curve(workdir, task)
                tail = curve[len(curve) // 2:]  # nan with fewer than 2 epochs: no spread to speak of
                spread = float(np.std(tail)) if len(tail) > 1 else float("nan")
                results[name].append((metrics["test/is"], metrics["test/fid"], spread, seconds))
                print(name, seed, results[name][-1], file=sys.stderr, flush=True)
    ms = lambda xs: ("—" if np.isnan(xs).any() else f"{np.mean(xs):.2f} ± {np.std(xs):.2f}" if len(xs) > 1  # noqa: E731
                     else f"{xs[0]:.2f}")
    rows = [f"| {name} | {ms([r[0] for r in rs])} | {ms([r[1] for r in rs])} | {ms([r[2] for r in rs])} | "
            f"{np.mean([r[3] for r in rs]):.0f} |" for name, rs in results.items()]
    rows += [f"| {name} | {v[0]:.3f} | {'' if np.isnan(v[1]) else f'{abs(v[1]):.2f}'} | | |" for name, v in refs.items()]
    label = ("**Reduced run** (fewer epochs and/or seeds than the full benchmark)" if reduced else
             f"Longer run ({args.epochs} epochs instead of {DEFAULT_EPOCHS}; section `gan` has the full run)" if longer
             else "Full run")
    command = f"python benchmarks/gan.py --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))} --reg {args.reg:g}"
    body = "\n".join([
        "## gan — GAN with the variational-inference regulariser vs plain GAN vs VAE (kexue.fm/archives/5716)"
        + (f", {args.epochs} epochs" if longer else ""),
        "",
        f"{label}: `{command}` — {args.epochs} epoch(s) of MNIST-5k (4,000 training images), seeds "
        f"{', '.join(map(str, args.seeds))}; {len(args.seeds) * len(variants)} runs, "
        f"{time.perf_counter() - start:.0f} s wall in all. Full size: `python benchmarks/gan.py` "
        f"({DEFAULT_EPOCHS} epochs, seeds {' '.join(map(str, DEFAULT_SEEDS))}).",
        f"Machine: {machine()} (other jobs may share the cores: the seconds are upper bounds)."
        + (" A reduced run checks the pipeline; its scores say nothing yet about the regulariser." if reduced else ""),
        "",
        "Scores of 500 samples from the best checkpoint (by val/fid) under the judge CNN trained here on MNIST-5k's "
        "training split: IS-like (higher is better, 10 at most) and FID-like against the 500 test images (lower is "
        "better); mean ± std over seeds. *val/fid spread*: std of val/fid over the last half of the epochs (lower = "
        "steadier training).",
        "",
        "| model | test IS-like | test FID-like | val/fid spread | s / run |",
        "|---|---|---|---|---|",
        *rows,
    ])
    write_section(f"gan_{args.epochs}_epochs" if longer else "gan", body)


if __name__ == "__main__":
    main()
