"""Task `reading_comprehension` on the templated DuIE questions: UniLM on a fresh BERT and on the pretraining task's
BERT, each without and with post 7259's random replacement of teacher-forced answer inputs (same seed), beside a
dictionary baseline that needs no learning.

Rows:
- dictionary baseline: the training answers of each predicate (read off the templated question); in a test passage,
  the most frequent of them that occurs (ties: the longest).
- `kexue run reading_comprehension` (fresh 4 × 256 BERT over the training split's characters), `--model.exposure_bias
  none` and `random_replace` (`--model.replace_prob 0.1`).
- the same with `--config bert_folder` on `benchmarks/.pretrain/bert` (written by `benchmarks/pretrain.py`; skipped
  with a note while it does not exist), lr 1e-4.

Usage: python benchmarks/reading_comprehension.py [--parts baseline,fresh,pretrained] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from _report import machine, run_kexue, test_metrics, write_section
from kexue.datamodules.reading_comprehension import ReadingComprehensionDataModule
from kexue.metrics.qa import char_f1, exact_match

RESULTS = Path(__file__).resolve().parent / ".reading_comprehension.json"  # rows of each part (committed)
PRETRAINED = Path(__file__).resolve().parent / ".pretrain" / "bert"


def baseline_row(data: ReadingComprehensionDataModule) -> str:
    predicate = lambda q: q.rsplit("的", 1)[-1].removesuffix("是什么？")  # noqa: E731
    answers: dict[str, Counter] = defaultdict(Counter)
    for row in data.splits["train"]:
        answers[predicate(row.question)][row.answers[0]] += 1
    em = f1 = 0.0
    for row in data.splits["test"]:
        found = [(n, len(a), a) for a, n in answers[predicate(row.question)].items() if a in row.passage]
        guess = max(found)[2] if found else ""
        em, f1 = em + exact_match(guess, row.answers), f1 + char_f1(guess, row.answers)
    n = len(data.splits["test"])
    return f"| training answers of the question's predicate found in the passage (no learning) | {em / n:.3f} | " \
           f"{f1 / n:.3f} | — | — |"


def epochs_run(workdir: Path) -> int:
    last = next(workdir.glob("runs/reading_comprehension/*/checkpoints/last.ckpt"))
    return int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1


def kexue_row(label: str, args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        proc, seconds = run_kexue(["run", "reading_comprehension", *args, "--logger", "none",
                                   "--trainer.enable_progress_bar", "false"], Path(tmp))
        epochs = epochs_run(Path(tmp))
    m = test_metrics(proc.stdout)
    return f"| {label} | {m['test/em']:.3f} | {m['test/f1']:.3f} | {epochs} | {seconds / epochs:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="baseline,fresh,pretrained")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    where = machine()
    data = ReadingComprehensionDataModule()
    data.setup("fit")
    done = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}

    def save(key: str, rows: list[str]) -> None:  # each part as it finishes: a later failure loses nothing
        done[key] = rows
        load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
        done.setdefault("when", {})[key] = (f"`--parts {key}` finished {time.strftime('%Y-%m-%d %H:%M')}, load average "
                                            f"{load:.2f} over its last 5 minutes")
        RESULTS.write_text(json.dumps(done, ensure_ascii=False, indent=1), encoding="utf-8")

    common = ["--trainer.max_epochs", str(args.epochs), "--seed_everything", str(args.seed)]
    switches = (("none", []), ("random_replace", ["--model.exposure_bias", "random_replace", "--model.replace_prob",
                                                  "0.1"]))
    if "baseline" in parts:
        save("baseline", [baseline_row(data)])
    if "fresh" in parts:
        save("fresh", [kexue_row(f"fresh BERT 4 × 256 (random init), exposure_bias {name}", [*common, *extra])
                       for name, extra in switches])
    if "pretrained" in parts:
        if (PRETRAINED / "config.json").exists():
            ckpt = ["--config", "bert_folder", "--model.bert.path", str(PRETRAINED), "--data.tokenizer.path",
                    str(PRETRAINED), "--model.lr", "1e-4"]
            save("pretrained", [kexue_row(f"pretrained BERT (`benchmarks/.pretrain/bert`), exposure_bias {name}",
                                          [*common, *ckpt, *extra]) for name, extra in switches])
        else:
            save("pretrained", ["| pretrained BERT: skipped, `benchmarks/.pretrain/bert/config.json` does not exist "
                                "yet (run `python benchmarks/pretrain.py`) | — | — | — | — |"])
    rows = [row for key in ("baseline", "fresh", "pretrained") for row in done.get(key, [])]
    body = "\n".join([
        "## reading_comprehension: UniLM seq2seq on templated DuIE questions (kexue.fm/archives/7115, /7259)", "",
        f"Command: `python benchmarks/reading_comprehension.py --parts baseline,fresh,pretrained --epochs "
        f"{args.epochs}` ({where}; each part can be rerun alone, its rows kept in `benchmarks/{RESULTS.name}`).",
        "Rows as measured: " + "; ".join(done.get("when", {}).get(k, f"`{k}`: from an earlier run")
                                         for k in ("baseline", "fresh", "pretrained") if k in done) + ".",
        f"Data: templated questions (`{{subject}}的{{predicate}}是什么？`, answer the object) over the DuIE sample of "
        f"`kexue fetch duie`, fixed split {data.hparams.split} (split_seed {data.hparams.split_seed}): "
        f"{len(data.splits['train'])} / {len(data.splits['val'])} / {len(data.splits['test'])} questions. Decoding: "
        "beam 3, answers restricted to passage substrings. Scores: exact match and character F1 on the test split, "
        f"best-val/f1 checkpoint; same seed ({args.seed}) with and without the switch. s / epoch is the whole "
        "`kexue run` wall time (fit with a decoding validation pass per epoch, then test) over the epochs run.",
        "Not comparable with the post's figures (SogouQA, BERT-base, bert4keras, after 8 epochs: Accuracy 0.726, F1 "
        "0.814, Final 0.770): other data, human questions, a 12-layer pretrained BERT.", "",
        "| model | EM | F1 | epochs | s / epoch |", "|---|---|---|---|---|", *rows,
    ])
    write_section("reading_comprehension", body)


if __name__ == "__main__":
    main()
