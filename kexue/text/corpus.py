"""Corpus tools for word vectors: tokenisers, streaming over files, parallel word counting, vocabulary,
subsampling of frequent words and sparse window co-occurrence counts.

Posts: Python的多进程编程技巧 (https://kexue.fm/archives/4231) and 什么时候多进程的加速比可以大于1?
(https://kexue.fm/archives/6032) for :func:`count_words` (each worker counts its own shard of the files and
the partial dicts are merged); 更别致的词向量模型 (https://kexue.fm/archives/4667, /4677) and SVD分解(三)
(https://kexue.fm/archives/4233) for the co-occurrence statistics the vector models are fitted to.

Files are read as streams of lines (never whole into memory); only the encoded corpus, one ``int32`` per
token, is held as a numpy array.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from os import PathLike
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy import sparse

from kexue.errors import UsageError

Tokenizer = Callable[[str], list[str]]
_WORD = re.compile(r"[^\W\d]+", re.UNICODE)  # word characters but digits (letters, "_"): as gensim


def english_tokens(text: str, min_len: int = 2, max_len: int = 15) -> list[str]:
    """Lower-cased, accent-stripped alphabetic tokens of ``min_len..max_len`` letters (the behaviour of
    gensim's ``simple_preprocess``, so our vocabulary matches the one gensim builds on the same text)."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return [w for w in _WORD.findall(text) if min_len <= len(w) <= max_len]


def chinese_chars(text: str) -> list[str]:
    """Every non-space character of ``text`` as a token (no segmentation needed, no OOV words)."""
    return [c for c in text if not c.isspace()]


def jieba_words(text: str) -> list[str]:
    """jieba's segmentation of ``text`` (spaces dropped). jieba is an optional extra: pip install jieba."""
    try:
        import jieba
    except ModuleNotFoundError as err:
        raise UsageError("--data.tokenizer jieba needs the jieba package (pip install jieba)") from err
    jieba.setLogLevel(60)  # its dictionary-loading chatter goes to stderr otherwise
    return [w for w in jieba.lcut(text) if not w.isspace()]


def whitespace_tokens(text: str) -> list[str]:
    """Tokens separated by whitespace (pre-segmented text)."""
    return text.split()


TOKENIZERS: dict[str, Tokenizer] = {
    "english": english_tokens,
    "chars": chinese_chars,
    "jieba": jieba_words,
    "whitespace": whitespace_tokens,
}


def get_tokenizer(name: str) -> Tokenizer:
    """The tokenizer called ``name`` (one of :data:`TOKENIZERS`); ValueError for another name."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}, expected one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[name]


def _check_file(path: str | PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    if not os.access(path, os.R_OK):
        raise UsageError("file not readable", path)
    return path


def stream_lines(paths: Sequence[str | PathLike], start: int = 0, end: int | None = None) -> Iterator[str]:
    """Lines of the UTF-8 files ``paths`` one by one (a file bigger than memory is fine).

    With ``start``/``end`` (byte offsets, single file only) yields the lines that *begin* in
    ``[start, end)``: byte ranges that tile a file give each line to exactly one range (the sharding of
    :func:`count_words`). A bad byte raises :class:`~kexue.errors.UsageError` naming the file and the line's
    number in the whole file, in a shard too (the lines before the shard are counted only then).
    """
    for path in map(_check_file, paths):
        with path.open("rb") as f:
            if start > 0:
                f.seek(start - 1)
                f.readline()  # finish the line that began before ``start``: it belongs to the previous shard
            pos, lineno = f.tell(), 0
            while end is None or pos < end:
                raw = f.readline()
                if not raw:
                    break
                pos += len(raw)
                lineno += 1
                try:
                    yield raw.decode("utf-8-sig" if lineno == 1 and start == 0 else "utf-8")
                except UnicodeDecodeError as err:
                    line = _newlines_before(path, pos - len(raw)) + 1 if start > 0 else lineno
                    raise UsageError(f"not UTF-8 text ({err.reason})", path, line) from err


def _newlines_before(path: Path, offset: int, chunk: int = 1 << 20) -> int:
    """Number of ``\\n`` bytes in the first ``offset`` bytes of ``path`` (read in chunks)."""
    count = 0
    with path.open("rb") as f:
        while offset > 0:
            block = f.read(min(chunk, offset))
            if not block:
                break
            count += block.count(b"\n")
            offset -= len(block)
    return count


def stream_sentences(paths: Sequence[str | PathLike], tokenizer: Tokenizer) -> Iterator[list[str]]:
    """Token lists of the non-empty lines of ``paths`` (one sentence or document a line), streamed."""
    for line in stream_lines(paths):
        tokens = tokenizer(line)
        if tokens:
            yield tokens


def _count_shard(args: tuple[str, int, int, str]) -> Counter:
    path, start, end, tokenizer = args
    tokenize, counts = get_tokenizer(tokenizer), Counter()
    for line in stream_lines([path], start, end):
        counts.update(tokenize(line))
    return counts


def shard_files(paths: Sequence[str | PathLike], shards: int) -> list[tuple[str, int, int]]:
    """Cut ``paths`` into about ``shards`` byte ranges ``(path, start, end)`` of similar size.

    A file is cut in proportion to its size; :func:`stream_lines` moves each cut to the next line start.
    """
    sizes = [_check_file(p).stat().st_size for p in paths]
    per_shard = max(1, sum(sizes) // max(1, shards))
    out = []
    for path, size in zip(paths, sizes):
        pieces = max(1, round(size / per_shard))
        bounds = np.linspace(0, size, pieces + 1).astype(int)
        out += [(str(path), int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    return out


def count_words(paths: Sequence[str | PathLike], tokenizer: str = "english", workers: int = 1) -> Counter:
    """Token counts of the files ``paths``; ``workers > 1`` counts byte-range shards in a process pool.

    The setting of 什么时候多进程的加速比可以大于1? (https://kexue.fm/archives/6032): each worker opens the
    file itself, counts its own shard into its own dict, and only the partial dicts travel back to be
    merged; no text is pickled between processes. ``workers=1`` is a plain single-process ``Counter``. Files
    without a token are a :class:`~kexue.errors.UsageError` (naming the file when there is one).
    """
    get_tokenizer(tokenizer)  # fail in the parent, not in every worker
    if workers <= 1:
        total = sum((_count_shard((str(p), 0, None, tokenizer)) for p in paths), Counter())
    else:
        shards = [(*s, tokenizer) for s in shard_files(paths, workers)]
        with get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
            parts = pool.map(_count_shard, shards, chunksize=1)
        total = parts[0]
        for part in parts[1:]:
            total.update(part)  # Counter.update adds counts
    if not total:  # the vectors and every figure on them would be computed on nothing
        raise UsageError("empty corpus: no tokens found", paths[0] if len(paths) == 1 else None)
    return total


@dataclass
class Vocab:
    """Words sorted by decreasing count (ties by first appearance), with their counts.

    Attributes:
        words: ``(V,)`` list of words; a word's id is its position.
        counts: ``(V,)`` int64 counts.
    """

    words: list[str]
    counts: np.ndarray

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def from_counts(cls, counts: Counter | dict[str, int], min_count: int = 1, max_size: int | None = None) -> "Vocab":
        """Keep words seen at least ``min_count`` times (the ``max_size`` most frequent, if given).

        An empty result raises :class:`~kexue.errors.UsageError` (nothing left to train on).
        """
        if not counts:
            raise UsageError("empty corpus: no tokens found")
        kept = [(w, c) for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda wc: -wc[1])  # stable: ties keep insertion order
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise UsageError(
                f"min_count={min_count} leaves no vocabulary (the most frequent word occurs "
                f"{max(counts.values())} times)"
            )
        return cls([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64))


def encode(sentences: Iterable[Sequence[str]], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the in-vocabulary tokens of ``sentences``, concatenated, and the sentence start offsets.

    Out-of-vocabulary tokens are dropped before any window is taken (as word2vec does), so windows span
    the remaining words. Returns ``ids`` ``(N,)`` int32 and ``offsets`` ``(S + 1,)`` int64 with
    sentence ``s`` = ``ids[offsets[s]:offsets[s + 1]]``; sentences left empty are skipped.
    """
    index, chunks, lengths = vocab.index, [], []
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]
        if ids:
            chunks.append(np.array(ids, dtype=np.int32))
            lengths.append(len(ids))
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    return ids, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


def sentence_ids(offsets: np.ndarray) -> np.ndarray:
    """``(N,)`` index of the sentence of every token, from ``offsets`` ``(S + 1,)``."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability ``(V,)`` of keeping each occurrence of a word under word2vec's subsampling.

    With ``f`` the word's share of the corpus, ``p = (sqrt(f / t) + 1) t / f`` capped at 1 (the formula of
    the word2vec C code; Mikolov et al.'s paper has ``sqrt(t / f)``). ``sample <= 0`` keeps everything.
    """
    if sample <= 0:
        return np.ones(len(counts))
    f = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(f / sample) + 1.0) * sample / f)


def window_pairs(
    ids: np.ndarray, sentences: np.ndarray, window: int, spans: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (center, context) positions within ``window`` tokens of each other inside one sentence.

    ``spans`` ``(N,)`` optionally gives each center its own window size (word2vec's random shrinking of
    the window, which weights near words more). Returns ``(center, context, distance)`` arrays of token
    positions, both directions. Vectorised one distance at a time: O(window * N) memory, no Python loop
    over tokens.
    """
    n, out = len(ids), ([], [], [])
    for d in range(1, window + 1):
        left = np.arange(n - d)
        same = sentences[left] == sentences[left + d]
        for center, context in ((left, left + d), (left + d, left)):
            keep = same if spans is None else same & (spans[center] >= d)
            out[0].append(center[keep])
            out[1].append(context[keep])
            out[2].append(np.full(int(keep.sum()), d, dtype=np.int32))
    return tuple(np.concatenate(x) if x else np.zeros(0, np.int64) for x in out)


def cooccurrence(
    ids: np.ndarray, offsets: np.ndarray, vocab_size: int, window: int, weighting: str = "uniform"
) -> sparse.csr_matrix:
    """Symmetric ``(V, V)`` sparse co-occurrence counts: ``X[i, j]`` sums over every pair of tokens ``i, j``
    at distance ``1..window`` in the same sentence, ``1`` per pair (``"uniform"``) or ``1/d``
    (``"harmonic"``, GloVe's weighting).

    Built one distance at a time so the pair arrays stay O(N); distances past the longest sentence hold no pair,
    so a window wider than it (even 10**12) costs no more than that sentence's length.
    """
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    sent = sentence_ids(offsets)
    total = sparse.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    longest = int(np.bincount(sent).max()) if len(sent) else 0
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for d in range(1, min(window, longest - 1) + 1):
        left = np.flatnonzero(sent[:-d] == sent[d:])  # (P,) first token of each pair at distance d
        w = np.full(len(left), 1.0 if weighting == "uniform" else 1.0 / d)
        pending.append((w, ids[left], ids[left + d]))
        # Summed into the matrix once per ~4N pairs, not per distance: a wide window adds O(nnz) once per batch.
        if sum(len(p[0]) for p in pending) >= 4 * len(ids) or d == min(window, longest - 1):
            w, a, b = (np.concatenate(parts) for parts in zip(*pending))
            total = total + sparse.csr_matrix((w, (a, b)), shape=(vocab_size, vocab_size))
            pending = []
    total = total + total.T  # pairs count in both directions
    total.sum_duplicates()
    return total.tocsr()


def ppmi(cooc: sparse.spmatrix, shift: float = 1.0, alpha: float = 1.0) -> sparse.csr_matrix:
    """Positive pointwise mutual information ``max(0, log(P(i, j) / (P(i) P(j))) - log shift)`` of a sparse
    co-occurrence matrix ``(V, V)``; zeros stay zeros (PMI there is minus infinity, clipped to 0).

    ``P(i)`` is the row marginal; ``alpha < 1`` smooths the context marginal ``P(j) ~ n_j^alpha`` (0.75 as
    word2vec's noise distribution). ``shift = k`` gives the SPPMI that SGNS with ``k`` negatives
    factorises (SVD分解(三), https://kexue.fm/archives/4233).
    """
    coo = sparse.coo_matrix(cooc)
    total = coo.data.sum()
    row = np.asarray(cooc.sum(axis=1)).ravel() / total  # (V,)
    col = np.asarray(cooc.sum(axis=0)).ravel() ** alpha  # (V,)
    col = col / col.sum()
    pmi = np.log(coo.data / total) - np.log(row[coo.row]) - np.log(col[coo.col]) - np.log(shift)
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=cooc.shape)


__all__ = [
    "TOKENIZERS",
    "Vocab",
    "chinese_chars",
    "cooccurrence",
    "count_words",
    "encode",
    "english_tokens",
    "get_tokenizer",
    "jieba_words",
    "keep_probability",
    "ppmi",
    "sentence_ids",
    "shard_files",
    "stream_lines",
    "stream_sentences",
    "whitespace_tokens",
    "window_pairs",
]
