"""Text-pair similarity data: the Lee corpus with human scores (gensim test data), or the user's pairs.

Also the word vectors needing no download: a small PPMI-SVD fitted on the fly to gensim's
``lee_background.cor`` (+ the 50 Lee documents, no scores), and a reader of word2vec text files.
Post: 从EMD、WMD到WRD:文本向量序列的相似度计算 (https://kexue.fm/archives/7388).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from kexue.data.readers import utf8_lines
from kexue.errors import UsageError

_WORD = re.compile(r"[^\W\d_]+")  # runs of letters: digits and punctuation split words

Pair = tuple[str, str, float]


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters: the tokenizer of the word-level vector sources."""
    return _WORD.findall(text.lower())


def _gensim_test_data() -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data"


@functools.lru_cache(maxsize=1)
def lee_corpus() -> tuple[list[str], np.ndarray]:
    """The 50 Lee documents and their human similarity matrix ``(50, 50)`` (upper triangle filled).

    Lee, Pincombe & Welsh (2005): 83 students rated the 1,225 pairs of 50 news documents from 1 to 5; gensim
    ships the documents (``lee.cor``, Latin-1) and the mean ratings scaled to ``[0, 1]`` (``similarities0-1.txt``).
    """
    root = _gensim_test_data()
    docs = [line.strip() for line in (root / "lee.cor").read_text(encoding="latin-1").splitlines() if line.strip()]
    scores = np.loadtxt(root / "similarities0-1.txt")
    assert len(docs) == 50 and scores.shape == (50, 50), (len(docs), scores.shape)
    return docs, scores


def lee_pairs() -> list[Pair]:
    """The 1,225 document pairs ``(doc_i, doc_j, human score)``, ``i < j`` in row-major order."""
    docs, scores = lee_corpus()
    rows, cols = np.triu_indices(len(docs), 1)
    return [(docs[i], docs[j], float(scores[i, j])) for i, j in zip(rows, cols)]


def read_pairs(path: str) -> list[Pair]:
    """A ``text_a<TAB>text_b<TAB>score`` file; a bad line is a :class:`UsageError` naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise UsageError("file not found", p)
    pairs = []
    for lineno, line in enumerate(utf8_lines(p), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise UsageError(f"expected 'text_a<TAB>text_b<TAB>score', found {len(fields)} field(s)", p, lineno)
        a, b, score = fields
        if not a.strip() or not b.strip():
            raise UsageError("empty text", p, lineno)
        try:
            pairs.append((a.strip(), b.strip(), float(score)))
        except ValueError:
            raise UsageError(f"score {score.strip()!r} is not a number", p, lineno) from None
    if len(pairs) < 2:
        raise UsageError("need at least 2 pairs to correlate with the scores", p)
    return pairs


def read_word2vec_text(path: str) -> tuple[dict[str, int], np.ndarray]:
    """A word2vec text file (``V d`` header, then ``word x_1 ... x_d`` lines) as ``(word -> row, (V, d))``."""
    p = Path(path)
    if not p.is_file():
        raise UsageError("word vector file not found", p)
    lines = utf8_lines(p)
    header = next(lines, "").split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise UsageError("expected a word2vec text header 'VOCAB_SIZE DIM'", p, 1)
    dim = int(header[1])
    index: dict[str, int] = {}
    rows = []
    for lineno, line in enumerate(lines, start=2):
        parts = line.rstrip().split(" ")
        if len(parts) != dim + 1:
            raise UsageError(f"expected a word and {dim} numbers, found {len(parts) - 1} numbers", p, lineno)
        try:
            rows.append(np.asarray(parts[1:], dtype=np.float64))
        except ValueError:
            raise UsageError("vector holds something that is not a number", p, lineno) from None
        index.setdefault(parts[0], len(rows) - 1)
    if not rows:
        raise UsageError("no vectors in file", p)
    return index, np.stack(rows)


@functools.lru_cache(maxsize=4)
def lee_svd_vectors(dim: int = 100, window: int = 5, min_count: int = 2) -> tuple[dict[str, int], np.ndarray]:
    """PPMI-SVD word vectors of ``lee_background.cor`` + ``lee.cor`` (~64k tokens, ~4k words), a few seconds.

    Counts within ``window`` words, positive PMI with the context distribution raised to 0.75 (Levy et al.
    2015), truncated SVD ``W = U sqrt(S)`` by a seeded randomised range finder. Counting and PPMI are
    :mod:`kexue.text.corpus`'s, as in the ``svd_vectors`` task; only this small SVD is local.
    """
    from kexue.text.corpus import cooccurrence, ppmi

    text = (_gensim_test_data() / "lee_background.cor").read_text(encoding="latin-1").splitlines()
    docs = [word_tokens(t) for t in text + lee_corpus()[0] if t.strip()]
    counts = Counter(w for d in docs for w in d)
    vocab = sorted(w for w, n in counts.items() if n >= min_count)
    index = {w: i for i, w in enumerate(vocab)}
    encoded = [[index[w] for w in d if w in index] for d in docs]  # out-of-vocabulary words dropped first
    ids = np.fromiter((i for d in encoded for i in d), dtype=np.int64)  # (N,)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in encoded])])  # (S + 1,)
    P = ppmi(cooccurrence(ids, offsets, len(vocab), window), alpha=0.75)  # (V, V) positive PMI
    V = len(vocab)
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(P @ rng.standard_normal((V, dim + 10)))[0]  # (V, dim + 10): range of P
    for _ in range(2):  # power iterations sharpen the leading singular directions
        Q = np.linalg.qr(P @ np.linalg.qr(P.T @ Q)[0])[0]
    u, s, _ = np.linalg.svd((P.T @ Q).T, full_matrices=False)  # B = Q^T P: (dim + 10, V)
    return index, (Q @ u[:, :dim]) * np.sqrt(s[:dim])  # (V, dim)


def _collate(batch: list[Pair]) -> tuple[list[str], list[str], torch.Tensor]:
    a, b, s = zip(*batch)
    return list(a), list(b), torch.tensor(s, dtype=torch.float64)  # [B], [B], (B,)


class TextPairDataModule(L.LightningDataModule):
    """Batches of ``(texts_a: list[str], texts_b: list[str], human scores (B,))``; embedding is the model's.

    Nothing is trained, so every stage sees the same pairs: the 1,225 Lee pairs, or ``pairs_path``.

    Args:
        pairs_path: ``text_a<TAB>text_b<TAB>score`` file replacing the Lee pairs (also what ``predict`` scores).
        batch_size: pairs per batch (a batch is solved by the thread pool of the distance solver).
    """

    def __init__(self, pairs_path: str | None = None, batch_size: int = 128) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        self.save_hyperparameters()
        self.pairs: list[Pair] = []

    def setup(self, stage: str) -> None:
        if not self.pairs:
            self.pairs = read_pairs(self.hparams.pairs_path) if self.hparams.pairs_path else lee_pairs()

    def _loader(self) -> DataLoader:
        return DataLoader(self.pairs, batch_size=self.hparams.batch_size, collate_fn=_collate)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader
