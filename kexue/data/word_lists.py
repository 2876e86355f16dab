"""The word lists the word-vector tasks are evaluated on, as datasets of word ids: wordsim353 and simlex999 (pairs
with a human similarity score) and the Google analogies (``a : b :: c : d``), from gensim's test data.

A DataModule encodes them with the vocabulary it built (:func:`word_list`); a word the vocabulary lacks becomes
``-1``, and its row stays, so that :mod:`kexue.metrics.word_vectors` counts it in the coverage. Batches are
dicts ``{"set": name, "index": (B,), "words": (B, 2) or (B, 4), "scores": (B,), "candidates": int}``: the set's
name (which Metric scores it), the rows' dataset indices (DDP's padding repeats some), their word ids, the human
scores (pairs; zeros for analogies) and how many of the most frequent words may answer an analogy.
Posts: SVD分解(三) (https://kexue.fm/archives/4208), 更别致的词向量模型 (https://kexue.fm/archives/4677).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from kexue.data.packages import gensim_test_file
from kexue.errors import UsageError
from kexue.text.vectors import read_analogies, read_word_pairs

FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogy": "questions-words.txt"}
ANALOGY_CANDIDATES = 30000  # the most frequent words that may answer an analogy (gensim restricts likewise)


class WordList(Dataset):
    """One encoded word list: ``words`` ``(N, 2)`` pairs or ``(N, 4)`` analogy questions, ``scores`` ``(N,)``.
    An item is its index; :meth:`collate` turns a list of indices into a batch (see the module docstring)."""

    def __init__(self, name: str, words: Tensor, scores: Tensor, candidates: int = ANALOGY_CANDIDATES) -> None:
        if words.ndim != 2 or words.shape[1] not in (2, 4) or scores.shape != words.shape[:1]:
            raise ValueError(f"expected words (N, 2) or (N, 4) and scores (N,), got {tuple(words.shape)}, "
                             f"{tuple(scores.shape)}")
        self.name, self.words, self.scores, self.candidates = name, words, scores, candidates

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: Sequence[int]) -> dict[str, Any]:
        index = torch.as_tensor(indices, dtype=torch.long)  # (B,)
        return {"set": self.name, "index": index, "words": self.words[index], "scores": self.scores[index],
                "candidates": self.candidates}


def word_list(name: str, vocabulary: Sequence[str]) -> WordList:
    """The word list ``name`` (``"wordsim353"``, ``"simlex999"`` or ``"analogy"``) encoded with ``vocabulary``
    (the ``V`` words, id order; lookups lower-case, as the lists are read)."""
    if name not in FILES:
        raise UsageError(f"unknown word list {name!r}: choose from {', '.join(FILES)}")
    index = {w: i for i, w in enumerate(vocabulary)}
    path = gensim_test_file(FILES[name])
    if name == "analogy":
        rows, scores = [[index.get(w, -1) for w in q] for q in read_analogies(path)], None
    else:
        pairs = read_word_pairs(path)
        rows, scores = [[index.get(a, -1), index.get(b, -1)] for a, b, _ in pairs], [s for _, _, s in pairs]
    words = torch.tensor(rows, dtype=torch.long).view(-1, 4 if name == "analogy" else 2)  # (N, 2|4)
    scores_t = torch.zeros(len(words)) if scores is None else torch.tensor(scores, dtype=torch.float32)  # (N,)
    return WordList(name, words, scores_t)


def word_list_loaders(names: Sequence[str], vocabulary: Sequence[str], batch_size: int = 1024) -> list[DataLoader]:
    """One DataLoader per word list of ``names``, in order, encoded with ``vocabulary``."""
    lists = [word_list(name, vocabulary) for name in names]
    return [DataLoader(data, batch_size=batch_size, collate_fn=data.collate) for data in lists]
