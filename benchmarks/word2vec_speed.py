"""word2vec training time, ours against gensim's, one thread each, same corpus and settings, in one run.

Our rows train `Word2Vec` + `SkipGramDataModule` (the `word2vec` task's classes and defaults) with a Lightning
Trainer in this process; gensim trains `Word2Vec(sg=1)` (``--mode cbow``: ``sg=0``) on the same token lists. Time = the training loop only
(our `fit` epochs without validation; gensim's `train` after `build_vocab`), as wall seconds and as CPU
seconds of this process (steadier when other jobs share the machine). Both sides run with one thread, so the
comparison is per core. Quality: wordsim353 / simlex999 Spearman and analogy accuracy of the input vectors,
scored by the same kexue.text.vectors functions, mean over the seeds.

Usage: python benchmarks/word2vec_speed.py [--epochs 3] [--seeds 42,43] [--share 1,8] [--mode cbow --lr 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from word_vectors import scores as _scores  # noqa: E402  (the whole-run benchmark's scoring, same word lists)

from _report import machine, write_section  # noqa: E402
from kexue.data.embedded import embedded_corpus  # noqa: E402
from kexue.datamodules.skipgram import SkipGramDataModule  # noqa: E402
from kexue.lightning_modules.word2vec import Word2Vec  # noqa: E402


def scores(vectors: torch.Tensor, words: list[str]) -> tuple[float, float, float]:
    """wordsim353 / simlex999 Spearman and analogy accuracy of ``vectors`` (V, D)."""
    result = _scores(words, vectors.detach().float())
    return result["wordsim353"], result["simlex999"], result["analogy"]


class TrainClock(L.Callback):
    """Wall and process CPU seconds from the start to the end of the training loop."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter(), time.process_time()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.wall, self.cpu = time.perf_counter() - self.start[0], time.process_time() - self.start[1]


def ours(epochs: int, seed: int, share: int, mode: str = "skipgram", lr: float = 0.025) -> tuple:
    L.seed_everything(seed, verbose=False)
    data = SkipGramDataModule(seed=seed, batch_size=4096, mode=mode)
    model = Word2Vec(vocab_size=data.vocab_size, words=data.words, counts=data.counts,  # the task's data_links
                     steps_per_epoch=data.steps_per_epoch, share_noise=share, mode=mode, lr=lr)
    clock = TrainClock()
    trainer = L.Trainer(max_epochs=epochs, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(model, datamodule=data)
    return clock.wall, clock.cpu, scores(model.vectors(), model.words)


def gensim(epochs: int, seed: int, mode: str = "skipgram", lr: float = 0.025) -> tuple:
    from gensim.models import Word2Vec as GensimWord2Vec

    vocab, ids, offsets = embedded_corpus("en")
    sentences = [[vocab.words[i] for i in ids[a:b]] for a, b in zip(offsets[:-1], offsets[1:])]
    model = GensimWord2Vec(vector_size=100, window=5, min_count=5, sg=int(mode == "skipgram"), negative=5,
                           sample=1e-3, workers=1, seed=seed, alpha=lr)
    model.build_vocab(sentences)
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, scores(torch.tensor(model.wv.vectors), list(model.wv.index_to_key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="42,43")
    parser.add_argument("--share", default="1,8", help="comma-separated share_noise values for our rows")
    parser.add_argument("--mode", default="skipgram", choices=["skipgram", "cbow"])
    parser.add_argument("--lr", type=float, default=0.025, help="initial learning rate, both sides (alpha)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: dict[str, list] = {}
    for seed in seeds:  # alternate the configs so machine load hits all alike
        label = "skip-gram" if args.mode == "skipgram" else "CBOW"
        runs.setdefault(f"gensim Word2Vec ({label}, 1 worker)", []).append(gensim(args.epochs, seed, args.mode, args.lr))
        for share in (int(s) for s in args.share.split(",")):
            name = f"kexue `word2vec`, share_noise={share}" + (" (independent draws)" if share == 1 else "")
            runs.setdefault(name, []).append(ours(args.epochs, seed, share, args.mode, args.lr))
    gensim_cpu = statistics.mean(r[1] for r in next(iter(runs.values())))
    rows = []
    for name, results in runs.items():
        wall, cpu = statistics.mean(r[0] for r in results), statistics.mean(r[1] for r in results)
        ws, sl, an = (statistics.mean(r[2][i] for r in results) for i in range(3))
        rows.append(f"| {name} | {ws:.3f} | {sl:.3f} | {an:.3f} | {wall:.1f} | {cpu:.1f} | {cpu / gensim_cpu:.2f}x |")
    load = os.getloadavg()[0]
    extra = f" --mode {args.mode} --lr {args.lr}" if args.mode != "skipgram" or args.lr != 0.025 else ""
    mode, unit = ("skip-gram", "pairs") if args.mode == "skipgram" else ("CBOW (mean of the window)", "windows")
    body = "\n".join([
        "## word2vec training time against gensim (one thread each)" + (", CBOW" if args.mode == "cbow" else ""),
        "",
        f"Command: `python benchmarks/word2vec_speed.py --epochs {args.epochs} --seeds {args.seeds} --share "
        f"{args.share}{extra}` ({machine()}; load average {load:.1f} at the end).",
        "",
        f"English embedded corpus (about 0.5M tokens), min_count 5, dim 100, window 5, {mode}, 5 negatives,",
        f"sample 1e-3, learning rate {args.lr}, {args.epochs} epochs, batches of 4096 {unit} for ours; mean over seeds "
        f"{args.seeds}. Time is the",
        "training loop only (ours: Lightning `fit` without validation; gensim: `train` after `build_vocab`); CPU =",
        "this process's CPU seconds over the same span, the steadier figure on a shared machine.",
        "",
        "| method | wordsim353 ρ | simlex999 ρ | analogy acc | train wall (s) | train CPU (s) | CPU vs gensim |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])
    write_section("word2vec-speed" if args.mode == "skipgram" else "word2vec-speed-cbow", body)


if __name__ == "__main__":
    main()
