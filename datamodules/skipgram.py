"""Training pairs of task ``word2vec``: skip-gram (center, context) pairs or CBOW windows, drawn afresh each
epoch with word2vec's subsampling and shrunk windows (“噪声对比估计”杂谈, https://kexue.fm/archives/5617).

The corpus, vocabulary and the sizes linked into the model are :class:`WordVectorDataModule`'s; this adds
:attr:`SkipGramDataModule.steps_per_epoch`, linked into the model for its linear learning-rate decay.
"""

from __future__ import annotations

from typing import Iterator, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from kexue.datamodules.word_vectors import WordVectorDataModule
from kexue.text.corpus import keep_probability, sentence_ids, window_pairs


class _PairBatches(IterableDataset):
    """Fresh skip-gram pairs (or CBOW windows) every epoch: new subsampling draws, new window spans, new
    order. Yields ready batches; ``(center (B,), context (B,))`` or ``(center (B,), contexts (B, 2W))``
    with ``-1`` padding for CBOW; with ``paragraphs``, skip-gram batches add ``paragraph (B,)``, the corpus line
    (sentence / document) of each pair."""

    def __init__(self, dm: "SkipGramDataModule", seed: int) -> None:
        self.dm, self.seed, self.epoch = dm, seed, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dm, rng = self.dm, np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        keep = rng.random(len(dm.ids)) < dm.keep_prob[dm.ids]  # word2vec's subsampling, redrawn each epoch
        ids, sent = dm.ids[keep], dm.sentences[keep]
        spans = rng.integers(1, dm.window + 1, len(ids))  # word2vec's shrunk window, uniform in 1..W
        center, context, _ = window_pairs(ids, sent, dm.window, spans)
        paragraphs = sent[center] if dm.paragraphs else None  # (P,): the corpus line of each pair (task jose)
        if dm.mode == "cbow":
            order = np.argsort(center, kind="stable")
            center, context = center[order], context[order]
            starts = np.flatnonzero(np.r_[True, center[1:] != center[:-1]])  # first pair of each center
            rank = np.arange(len(center)) - np.repeat(starts, np.diff(np.r_[starts, len(center)]))
            ctx = np.full((len(starts), 2 * dm.window), -1, dtype=np.int64)  # (C, 2W)
            ctx[np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(center)])), rank] = ids[context]
            targets, inputs = ids[center[starts]], ctx
        else:
            targets, inputs = ids[center], ids[context]
        order = rng.permutation(len(targets))
        b = dm.batch_size
        for i in range(0, len(order), b):
            idx = order[i : i + b]
            batch = [targets[idx], inputs[idx], *([] if paragraphs is None else [paragraphs[idx]])]
            yield tuple(torch.as_tensor(x, dtype=torch.long) for x in batch)


class SkipGramDataModule(WordVectorDataModule):
    """Training pairs for word2vec with negative sampling (task ``word2vec``).

    Args:
        sample: subsampling threshold ``t`` (see :func:`kexue.text.corpus.keep_probability`); 0 keeps all.
        batch_size: pairs (skip-gram) or windows (CBOW) per step.
        mode: ``"skipgram"`` or ``"cbow"`` (linked from ``model.mode``).
        seed: seed of the per-epoch subsampling and shuffling.
        paragraphs: skip-gram batches also carry each pair's paragraph id, ``(center, context, paragraph)``, the
            paragraph being the corpus line (sentence or document) the pair comes from (task ``jose``; JoSE,
            https://kexue.fm/archives/7063). Sized by :attr:`num_paragraphs`.
        (other arguments, ``window`` among them: :class:`WordVectorDataModule`; each center draws its own
        window span in ``1..window``)
    """

    def __init__(
        self,
        sample: float = 1e-3,
        batch_size: int = 4096,
        mode: Literal["skipgram", "cbow"] = "skipgram",
        seed: int = 0,
        paragraphs: bool = False,
        **corpus_options,
    ) -> None:
        super().__init__(**corpus_options)
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if paragraphs and mode == "cbow":
            raise ValueError("data.paragraphs needs data.mode skipgram: CBOW windows have no single pair")
        self.sample, self.batch_size, self.mode, self.seed = sample, batch_size, mode, seed
        self.paragraphs = paragraphs
        self._train: _PairBatches | None = None

    def load(self) -> None:
        """The corpus (see :meth:`WordVectorDataModule.load`), then each token's sentence and keep probability."""
        if self.vocab is None:
            super().load()
            self.sentences = sentence_ids(self.offsets)  # (N,)
            self.keep_prob = keep_probability(self.vocab.counts, self.sample)  # (V,)

    @property
    def num_paragraphs(self) -> int:
        """``S``, the number of corpus lines (sentences or documents; the paragraphs of JoSE)."""
        self.load()
        return len(self.offsets) - 1

    @property
    def steps_per_epoch(self) -> int:
        """Expected batches per epoch (for the linear learning-rate decay): kept tokens x mean window pairs."""
        self.load()
        kept = float(self.keep_prob[self.ids].sum())
        per_center = 1.0 if self.mode == "cbow" else (self.window + 1)  # E[2 * span], span ~ U{1..W}
        return max(1, int(kept * per_center / self.batch_size))

    def train_dataloader(self) -> DataLoader:
        self.load()
        if self._train is None:
            self._train = _PairBatches(self, self.seed)
        return DataLoader(self._train, batch_size=None)
