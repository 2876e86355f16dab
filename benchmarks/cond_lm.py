"""Task `cond_lm` (kexue.fm/archives/7124): reviews generated under a label, judged by the sentiment classifier.

The judge is `kexue run sentiment` as a user types it (bag of char n-grams, the fixed 0.8/0.1/0.1 split), trained
here in a temporary folder; cond_lm trains on the same training split, so no review the judge is tested on is
trained on. Each row trains `kexue run cond_lm`, samples `--samples` reviews per label from its best checkpoint
(`kexue predict cond_lm`, top-k 20 / top-p 0.95), classifies them with the judge (`kexue predict sentiment`) and
reports: label agreement (share classified as the label asked for; the issue's goal is >= 0.9), distinct-1/2 over
the samples, the share copied verbatim from the training split, test perplexity.

Rows (parts):
- `fresh`: the default, a 4 × 256 BERT from random initialisation over the training split's characters.
- `pretrained`: `--config cond_lm_bert_folder` on `benchmarks/.pretrain/bert` (what `benchmarks/pretrain.py` keeps),
  skipped with a note while that folder has no config.json.
- `random_init` (not run by default): the pretrained folder's network and vocabulary from random initialisation
  (`--model.bert.weights false`).
- `unconditioned`: the default with `--data.shuffle_labels true`, so the label carries nothing: what the judge says
  of text that ignores the label it was asked for.

Usage: python benchmarks/cond_lm.py [--parts fresh,pretrained,unconditioned] [--samples 200] [--epochs 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _report import machine, run_kexue, test_metrics, write_section
from kexue.datamodules.cond_lm import ConditionalLMDataModule
from kexue.metrics import copy_rate, distinct_n

HERE = Path(__file__).resolve().parent
RESULTS = HERE / ".cond_lm.json"  # rows of earlier parts, committed
PRETRAINED = HERE / ".pretrain" / "bert"
FOLDER = ["--config", "cond_lm_bert_folder", "--model.bert.path", str(PRETRAINED), "--data.tokenizer.path", str(PRETRAINED)]
PARTS = ("fresh", "pretrained", "random_init", "unconditioned")
SMOKE = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
         "--trainer.max_epochs", "1"]
TINY = ["--model.bert.dim", "16", "--model.bert.num_layers", "1", "--model.bert.num_heads", "2",
        "--model.bert.ffn_dim", "32"]


def best_checkpoint(workdir: Path, task: str) -> Path:
    """The best checkpoint of the one run of ``task`` under ``workdir``."""
    return next((workdir / "runs" / task).glob("*/checkpoints/best-*.ckpt"))


def train_judge(workdir: Path, smoke: bool) -> tuple[Path, float]:
    """``kexue run sentiment`` (defaults) in ``workdir``: its best checkpoint and test accuracy."""
    proc, _ = run_kexue(["run", "sentiment", "--logger", "none", *(SMOKE if smoke else [])], workdir)
    return best_checkpoint(workdir, "sentiment"), test_metrics(proc.stdout)["test/acc"]


def judge(samples: list[str], checkpoint: Path, workdir: Path) -> list[str | None]:
    """The sentiment label the judge gives each sample (``None`` for an empty one)."""
    path = workdir / "samples.txt"
    path.write_text("".join(f"{s}\n" for s in samples), encoding="utf-8")
    proc, _ = run_kexue(["predict", "sentiment", "--ckpt_path", str(checkpoint), "--data.predict_path", str(path),
                         "--logger", "none"], workdir)
    lines = proc.stdout.splitlines()[-len(samples):]
    return [line.split("\t")[0] if line else None for line in lines]


def measure(name: str, args: list[str], judge_ckpt: Path, n: int, train_texts: set[str], smoke: bool) -> dict:
    """Train one cond_lm row, sample ``n`` reviews per label, judge them; the row's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, seconds = run_kexue(["run", "cond_lm", "--logger", "none", *args, *(SMOKE + TINY if smoke else [])],
                                  workdir)
        ppl = test_metrics(proc.stdout)["test/ppl"]
        epochs = len({line.split("\t")[0] for line in (next((workdir / "runs" / "cond_lm").glob("*/samples.txt"))
                                                       .read_text(encoding="utf-8").splitlines())})
        labels_file = workdir / "labels.txt"
        labels_file.write_text(f"neg\t{n}\npos\t{n}\n", encoding="utf-8")
        pred, gen_seconds = run_kexue(["predict", "cond_lm", "--ckpt_path", str(best_checkpoint(workdir, "cond_lm")),
                                       "--data.predict_path", str(labels_file), "--logger", "none"], workdir)
        rows = [line.split("\t") for line in pred.stdout.splitlines() if line.startswith(("neg\t", "pos\t"))][-2:]
        asked = [row[0] for row in rows for _ in row[1:]]
        samples = [text for row in rows for text in row[1:]]
        said = judge(samples, judge_ckpt, workdir)
    agree = lambda label: [s == a for s, a in zip(said, asked) if a == label]  # noqa: E731
    return {
        "name": name, "args": " ".join(args), "agreement": sum(s == a for s, a in zip(said, asked)) / len(asked),
        "agreement_neg": sum(agree("neg")) / max(1, len(agree("neg"))),
        "agreement_pos": sum(agree("pos")) / max(1, len(agree("pos"))),
        "distinct_1": distinct_n(samples, 1), "distinct_2": distinct_n(samples, 2),
        "copied": copy_rate(samples, train_texts), "empty": samples.count("") / len(samples),
        "mean_chars": sum(map(len, samples)) / len(samples), "test_ppl": ppl, "epochs": epochs,
        "train_seconds": round(seconds), "generate_seconds": round(gen_seconds),
        "examples": {label: [s for s, a in zip(samples, asked) if a == label][:3] for label in ("neg", "pos")},
    }


def table_row(r: dict) -> str:
    """One Markdown table row of a measured row (:func:`measure`)."""
    return (f"| {r['name']} | {r['agreement']:.3f} ({r['agreement_neg']:.2f} / {r['agreement_pos']:.2f}) | "
            f"{r['distinct_1']:.3f} | {r['distinct_2']:.3f} | {r['copied']:.3f} | {r['test_ppl']:.1f} | "
            f"{r['mean_chars']:.1f} | {r['epochs']} | {r['train_seconds']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="fresh,pretrained,unconditioned")
    parser.add_argument("--samples", type=int, default=200, help="reviews per label")
    parser.add_argument("--pretrained_lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=1, help="--trainer.max_epochs of every row")
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few batches; nothing written")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose among {PARTS}")
    data = ConditionalLMDataModule()
    data.setup("fit")
    train_texts = {text for text, _ in data.splits["train"]}
    done = {} if args.smoke else json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    where = machine()
    has_bert = (PRETRAINED / "config.json").is_file()
    commands = {
        "fresh": ("BERT 4 × 256 from random init, characters (`kexue run cond_lm`, the default)", []),
        "pretrained": (f"pretrained BERT (`--config cond_lm_bert_folder` on benchmarks/.pretrain/bert, `--model.lr "
                       f"{args.pretrained_lr}`)", [*FOLDER, "--model.lr", str(args.pretrained_lr)]),
        "random_init": ("the pretrained BERT's network and vocabulary from random init (`--model.bert.weights false`)",
                        [*FOLDER, "--model.bert.weights", "false"]),
        "unconditioned": ("unconditioned: the default with `--data.shuffle_labels true`",
                          ["--data.shuffle_labels", "true"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        judge_ckpt, judge_acc = train_judge(Path(tmp), args.smoke)
        done["judge"] = {"test_acc": judge_acc}
        for part in parts:
            if part in ("pretrained", "random_init") and not has_bert:
                done.setdefault("notes", {})[part] = (f"skipped {time.strftime('%Y-%m-%d %H:%M')}: "
                                                      f"{PRETRAINED}/config.json does not exist (run benchmarks/"
                                                      "pretrain.py first)")
                continue
            name, extra = commands[part]
            extra = [*extra, "--trainer.max_epochs", str(args.epochs)]
            row = measure(name, extra, judge_ckpt, 4 if args.smoke else args.samples, train_texts, args.smoke)
            load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
            row["when"] = f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load:.2f} over its last 5 minutes"
            done[part] = row
            done.get("notes", {}).pop(part, None)
            if not args.smoke:
                RESULTS.write_text(json.dumps(done, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.smoke:
        print(json.dumps(done, ensure_ascii=False, indent=1))
        return
    rows = [done[p] for p in PARTS if p in done]
    body = "\n".join([
        "## cond_lm: label-conditioned reviews, Conditional LayerNorm (kexue.fm/archives/7124)", "",
        f"Command: `python benchmarks/cond_lm.py --parts {','.join(parts)} --samples {args.samples} --epochs "
        f"{args.epochs}` ({where}; each "
        f"part can be rerun alone, its row kept in `benchmarks/{RESULTS.name}`).",
        "Rows as measured: " + "; ".join(f"`{p}` {done[p]['when']}" for p in PARTS if p in done) + ".",
        *(f"`{p}`: {note}." for p, note in done.get("notes", {}).items()),
        f"Judge: `kexue run sentiment` (defaults), test accuracy {done['judge']['test_acc']:.3f} on the sentiment test "
        f"split, which no row trains on. Each row: `kexue run cond_lm` on the {len(train_texts):,} training reviews "
        f"(best val/ppl checkpoint), then {args.samples} sampled reviews per label (top-k 20, top-p 0.95, at most 48 "
        "tokens). Agreement: share the judge classifies as the label asked for (neg / pos apart); distinct-n: "
        "distinct character n-grams / all, over the samples; copied: share equal to a training review; s: the whole "
        "`kexue run` (fit + test).", "",
        "| model | agreement (neg / pos) | distinct-1 | distinct-2 | copied | test ppl | chars | epochs | s |",
        "|---|---|---|---|---|---|---|---|---|", *map(table_row, rows), "",
        "Samples (first three per label):", "",
        *(f"- {r['name']}, {label}: " + " / ".join(r["examples"][label]) for r in rows for label in ("neg", "pos")),
    ])
    write_section("cond_lm", body)


if __name__ == "__main__":
    main()
