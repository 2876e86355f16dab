"""Text-pair similarity data: the Lee corpus with human scores (gensim test data), or the user's pairs.

Post: 从EMD、WMD到WRD:文本向量序列的相似度计算 (https://kexue.fm/archives/7388). The token vectors are the
model's (:mod:`kexue.models.token_vectors`); this module only reads and batches the pairs.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from kexue.data.packages import gensim_test_file
from kexue.data.readers import utf8_lines
from kexue.errors import UsageError

Pair = tuple[str, str, float]


@functools.lru_cache(maxsize=1)
def lee_corpus() -> tuple[list[str], np.ndarray]:
    """The 50 Lee documents and their human similarity matrix ``(50, 50)`` (upper triangle filled).

    Lee, Pincombe & Welsh (2005): 83 students rated the 1,225 pairs of 50 news documents from 1 to 5; gensim
    ships the documents (``lee.cor``, Latin-1) and the mean ratings scaled to ``[0, 1]`` (``similarities0-1.txt``).
    """
    text = gensim_test_file("lee.cor").read_text(encoding="latin-1")
    docs = [line.strip() for line in text.splitlines() if line.strip()]
    scores = np.loadtxt(gensim_test_file("similarities0-1.txt"))
    if len(docs) != 50 or scores.shape != (50, 50):
        raise UsageError(f"expected 50 documents and 50x50 scores, found {len(docs)} and {scores.shape}",
                         gensim_test_file("lee.cor"))
    return docs, scores


def lee_pairs() -> list[Pair]:
    """The 1,225 document pairs ``(doc_i, doc_j, human score)``, ``i < j`` in row-major order."""
    docs, scores = lee_corpus()
    rows, cols = np.triu_indices(len(docs), 1)
    return [(docs[i], docs[j], float(scores[i, j])) for i, j in zip(rows, cols)]


def read_pairs(path: str) -> list[Pair]:
    """A ``text_a<TAB>text_b<TAB>score`` file; a bad line (wrong field count, empty text, a score that is not a
    finite number) is a :class:`UsageError` naming file and line."""
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
            value = float(score)
        except ValueError:
            raise UsageError(f"score {score.strip()!r} is not a number", p, lineno) from None
        if not math.isfinite(value):  # a nan would make Pearson nan while Spearman still prints a number
            raise UsageError(f"score {score.strip()!r} is not a finite number", p, lineno)
        pairs.append((a.strip(), b.strip(), value))
    if len(pairs) < 2:
        raise UsageError("need at least 2 pairs to correlate with the scores", p)
    return pairs


def collate_pairs(batch: list[tuple[int, Pair]]) -> dict[str, torch.Tensor | list[str]]:
    """``texts_a``, ``texts_b`` (``B`` strings each), ``scores`` ``(B,)`` float64 and ``index`` ``(B,)`` (the pairs'
    positions, so a metric counts a pair repeated by DDP padding once) of ``(position, pair)`` examples."""
    index, pairs = zip(*batch)
    a, b, s = zip(*pairs)
    return {"texts_a": list(a), "texts_b": list(b), "scores": torch.tensor(s, dtype=torch.float64),
            "index": torch.tensor(index, dtype=torch.long)}  # fmt: skip


class TextPairDataModule(L.LightningDataModule):
    """Batches of :func:`collate_pairs` dicts; the texts stay strings because tokenising is the token vectors'
    (WordPiece for MiniLM, words for a word table), and nothing here is trained.

    Every stage sees the same pairs: the 1,225 Lee pairs, or ``pairs_path``.

    Args:
        pairs_path: ``text_a<TAB>text_b<TAB>score`` file replacing the Lee pairs (also what ``predict`` scores).
        batch_size: pairs per batch (a batch is solved by the thread pool of the distance solver).
    """

    def __init__(self, pairs_path: str | None = None, batch_size: int = 128) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters()
        self.pairs: list[Pair] = []

    def setup(self, stage: str) -> None:
        if not self.pairs:
            self.pairs = read_pairs(self.hparams.pairs_path) if self.hparams.pairs_path else lee_pairs()

    def _loader(self) -> DataLoader:
        return DataLoader(list(enumerate(self.pairs)), batch_size=self.hparams.batch_size, collate_fn=collate_pairs)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader
