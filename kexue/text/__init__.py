"""Text tools shared by the tasks: char n-grams, feature hashing, padding, tagging schemes; and, in submodules,
the text family's tokenizer components (:mod:`kexue.text.tokenizers`), corpora (:mod:`kexue.text.corpus`), word
vectors (:mod:`kexue.text.vectors`) and new-word discovery (:mod:`kexue.text.word_discovery`). Nothing here imports
:mod:`kexue.data` (the data layer imports text tools, not the reverse).

Feature hashing (the trick fastText uses for n-grams) keeps featurisation stateless: no vocabulary
to build, save, ship with a checkpoint or keep in sync across DDP ranks. ``predict`` on new text
needs nothing but the model's hyperparameters. File readers live in :mod:`kexue.data.readers`.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import torch
from torch import Tensor


def char_ngrams(text: str, ngrams: Sequence[int] = (1,), max_length: int | None = None) -> list[str]:
    """Character n-grams of ``text`` for each ``n`` in ``ngrams``, in order, unigrams first.

    ``max_length`` truncates the text (in characters) before n-grams are taken.
    """
    if max_length is not None:
        text = text[:max_length]
    return [text[i : i + n] for n in ngrams for i in range(len(text) - n + 1)]


def hash_tokens(tokens: Iterable[str], num_buckets: int) -> list[int]:
    """Stable bucket ids in ``[1, num_buckets)`` for ``tokens`` (0 is left for padding).

    CRC-32 instead of ``hash()``: Python salts string hashes per process, which would change the
    features between training and prediction.
    """
    return [zlib.crc32(t.encode("utf-8")) % (num_buckets - 1) + 1 for t in tokens]


def pad_sequences(seqs: Sequence[Sequence[int] | Sequence[Sequence[int]]], min_length: int = 1) -> Tensor:
    """Right-pad integer sequences with 0 into a ``(B, T)`` LongTensor, ``T = max(len, min_length)``; sequences
    of ``G``-id rows (hashed features per step) give ``(B, T, G)``."""
    width = max([min_length, *map(len, seqs)])
    first = next((seq for seq in seqs if len(seq)), [0])
    features = (len(first[0]),) if isinstance(first[0], (list, tuple)) else ()
    out = torch.zeros(len(seqs), width, *features, dtype=torch.long)  # (B, T) or (B, T, G)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def bmes_tags(words: Sequence[str]) -> list[str]:
    """Per-character B/M/E/S tags of a segmented sentence: ``["北京", "好"]`` -> ``["B", "E", "S"]``.

    The labelling of 简明条件随机场CRF介绍 (https://kexue.fm/archives/5542): a word of one character is
    S, longer words are B, then M..., then E.
    """
    return [tag for w in words for tag in (["S"] if len(w) == 1 else ["B", *["M"] * (len(w) - 2), "E"])]


def bio_tags(length: int, spans: Iterable[tuple[int, int, str]]) -> list[str]:
    """B-X/I-X/O tags of ``length`` characters holding the entity ``spans`` ``(start, end, label)``, end exclusive."""
    tags = ["O"] * length
    for start, end, label in spans:
        tags[start : end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
    return tags


def char_features(text: str, num_buckets: int, bigrams: bool = True) -> list[list[int]]:
    """Hashed features of each character: its own id, then (``bigrams``) the ids of the bigrams ending and
    starting at it (``\\x02``/``\\x03`` mark the sentence ends) -> ``len(text)`` rows of ``G`` = 1 or 3 ids."""
    unigrams = hash_tokens(text, num_buckets)
    if not bigrams:
        return [[u] for u in unigrams]
    padded = f"\x02{text}\x03"
    pairs = hash_tokens((padded[i : i + 2] for i in range(len(text) + 1)), num_buckets)  # L + 1
    return [[u, pairs[i], pairs[i + 1]] for i, u in enumerate(unigrams)]
