"""JoSE (https://kexue.fm/archives/7063): `kexue run jose` beside `kexue run word2vec` and `kexue run svd_vectors`,
same corpus (the embedded English one), same dimension (100) and window (5), in one run: wordsim353 / simlex999
Spearman, analogy accuracy, wall time.

Every row is a real `kexue run TASK` (default config unless the row says otherwise), timed wall-clock including
start-up and data loading; its exported vectors.txt is scored with the same functions as benchmarks/word_vectors.py
(kexue.text.vectors). JoSE runs twice: the post's joint hinge (the task's default) and the JoSE code's separate
hinges (`--model.hinge separate`).

Usage: python benchmarks/jose.py [--epochs N] [--jose-epochs N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from word_vectors import run_kexue, scores

from _report import machine, write_section
from kexue.text.vectors import load_word2vec_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="word2vec epochs")
    parser.add_argument("--jose-epochs", type=int, default=5, help="JoSE epochs (the JoSE code's default is 10)")
    parser.add_argument("--kexue-args", nargs="*", default=[], help="extra arguments for every kexue run")
    args = parser.parse_args()
    runs = (
        ("kexue `jose` (joint hinge, the post's loss)", "jose", [f"--trainer.max_epochs={args.jose_epochs}"]),
        ("kexue `jose --model.hinge separate` (the JoSE code's loss)", "jose",
         [f"--trainer.max_epochs={args.jose_epochs}", "--model.hinge", "separate"]),
        ("kexue `word2vec` (skip-gram, 5 negatives)", "word2vec", [f"--trainer.max_epochs={args.epochs}"]),
        ("kexue `svd_vectors` (PPMI + SVD)", "svd_vectors", []),
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, task, extra in runs:
            _, path, seconds = run_kexue(task, [*extra, *args.kexue_args], Path(tmp))
            words, vectors = load_word2vec_format(path)
            rows.append((name, scores(words, torch.tensor(vectors)), seconds))
    cov = rows[0][1]
    body = [
        f"Command: `python benchmarks/jose.py --epochs {args.epochs} --jose-epochs {args.jose_epochs}`; {machine()} "
        "(shared machine: compare times within this table only).",
        "",
        "English embedded corpus (gensim's enwiki sample + lee_background, about 0.5M tokens, 15k lines = JoSE's "
        f"paragraphs), min_count 5, dim 100, window 5, subsampling 1e-3. JoSE: margin 0.15, 2 negatives, Riemannian "
        f"SGD lr 0.04 with the paper's cosine-distance step scaling, {args.jose_epochs} epochs; word2vec "
        f"{args.epochs} epochs. Pairs/questions found in the vocabulary: wordsim353 {cov['ws_cov']:.0%}, simlex999 "
        f"{cov['sl_cov']:.0%}, analogies {cov['an_cov']:.0%}.",
        "",
        "| method | wordsim353 ρ | simlex999 ρ | analogy acc | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s, seconds in rows:
        body.append(f"| {name} | {s['wordsim353']:.3f} | {s['simlex999']:.3f} | {s['analogy']:.3f} | {seconds:.1f} |")
    body += [
        "",
        "Times are whole `kexue run` processes (start-up, corpus loading from the cache, training, test, export; "
        "JoSE also exports its paragraph vectors). The JoSE vectors scored are the word vectors u (the JoSE code's "
        "`-word-output`).",
    ]
    write_section("jose", "## JoSE: spherical word vectors vs word2vec and svd_vectors\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
