"""Corpus tools against independent references: naive loops, collections.Counter, a dense numpy PPMI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kexue.errors import UsageError
from kexue.text.corpus import (
    Vocab,
    chinese_chars,
    cooccurrence,
    count_words,
    encode,
    english_tokens,
    keep_probability,
    ppmi,
    shard_files,
    stream_lines,
    window_pairs,
)

SENTENCES = [["a", "b", "c", "a", "d"], ["b", "a"], ["c"], ["d", "d", "a", "b", "c", "e"]]


def test_english_tokens_like_simple_preprocess() -> None:
    gensim_utils = pytest.importorskip("gensim.utils")
    text = "Café au lait, in 1998: the U.S.A. x's tooooooooooooooooolong naïve-ish word_two"
    assert english_tokens(text) == gensim_utils.simple_preprocess(text, deacc=True)


def test_chinese_chars_drop_spaces() -> None:
    assert chinese_chars("北京 欢迎\t你") == ["北", "京", "欢", "迎", "你"]


def _write_corpus(tmp_path: Path, lines: int = 400) -> Path:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    path = tmp_path / "corpus.txt"
    text = "\n".join(" ".join(rng.choice(words, size=rng.integers(1, 20))) for _ in range(lines))
    path.write_text(text + "\nnaïve ÉCOLE école\n", encoding="utf-8")
    return path


def test_shards_tile_the_file(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path)
    lines = list(stream_lines([path]))
    for shards in (1, 2, 3, 7):
        got = [line for p, a, b in shard_files([path], shards) for line in stream_lines([p], a, b)]
        assert got == lines  # every line exactly once, in order, whichever byte the cuts fall on


def test_parallel_counts_equal_counter(tmp_path: Path) -> None:
    path = _write_corpus(tmp_path)
    other = tmp_path / "other.txt"
    other.write_text("w1 w2 w3\nzeta\n", encoding="utf-8")
    reference = Counter(
        w for p in (path, other) for line in p.read_text(encoding="utf-8").splitlines() for w in english_tokens(line)
    )
    assert count_words([path, other], "english", workers=1) == reference
    assert count_words([path, other], "english", workers=2) == reference
    assert count_words([path], "english", workers=3) == Counter(
        w for line in path.read_text(encoding="utf-8").splitlines() for w in english_tokens(line)
    )


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        count_words([tmp_path / "missing.txt"])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(UsageError, match=r"bad.txt:2: not UTF-8"):
        count_words([bad])


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_bad_byte_names_its_line_in_the_whole_file_whatever_the_sharding(tmp_path: Path, workers: int) -> None:
    rows = [b"line %d of the corpus" % i for i in range(1, 301)]
    rows[150] = b"line 151 has a bad \xff byte"  # 1-based line 151, in the second half: inside a later shard
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\n".join(rows) + b"\n")
    assert len(shard_files([bad], workers)) == workers  # the line falls in a shard that starts past byte 0
    with pytest.raises(UsageError, match=r"bad.txt:151: not UTF-8"):
        count_words([bad], "english", workers=workers)


def test_vocab_min_count_and_errors() -> None:
    vocab = Vocab.from_counts(Counter({"a": 5, "b": 2, "c": 5, "d": 1}), min_count=2)
    assert vocab.words == ["a", "c", "b"] and vocab.counts.tolist() == [5, 5, 2]
    with pytest.raises(UsageError, match="leaves no vocabulary"):
        Vocab.from_counts(Counter({"a": 1}), min_count=3)
    with pytest.raises(UsageError, match="empty corpus"):
        Vocab.from_counts(Counter())


def test_encode_drops_oov_tokens_and_empty_sentences() -> None:
    vocab = Vocab(["a", "b"], np.array([3, 2]))
    ids, offsets = encode([["a", "x", "b"], ["x"], ["b"]], vocab)
    assert ids.tolist() == [0, 1, 1] and offsets.tolist() == [0, 2, 3]


def test_keep_probability_formula() -> None:
    counts = np.array([1000, 10, 1])
    f = counts / counts.sum()
    t = 1e-2
    expected = [min(1.0, (np.sqrt(fi / t) + 1) * t / fi) for fi in f]
    np.testing.assert_allclose(keep_probability(counts, t), expected)
    assert keep_probability(counts, 0).tolist() == [1, 1, 1]


def _naive_cooc(sentences: list[list[int]], vocab_size: int, window: int, harmonic: bool) -> np.ndarray:
    x = np.zeros((vocab_size, vocab_size))
    for s in sentences:
        for i, a in enumerate(s):
            for j, b in enumerate(s):
                if i != j and abs(i - j) <= window:
                    x[a, b] += 1.0 / abs(i - j) if harmonic else 1.0
    return x


@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("weighting", ["uniform", "harmonic"])
def test_cooccurrence_matches_naive_loop(window: int, weighting: str) -> None:
    vocab = Vocab(["a", "b", "c", "d", "e"], np.ones(5))
    ids, offsets = encode(SENTENCES, vocab)
    naive = _naive_cooc([[vocab.index[w] for w in s] for s in SENTENCES], 5, window, weighting == "harmonic")
    np.testing.assert_allclose(cooccurrence(ids, offsets, 5, window, weighting).toarray(), naive)


def test_window_pairs_respect_sentences_and_spans() -> None:
    vocab = Vocab(["a", "b", "c", "d", "e"], np.ones(5))
    ids, offsets = encode(SENTENCES, vocab)
    sent = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    spans = np.random.default_rng(0).integers(1, 4, len(ids))
    center, context, dist = window_pairs(ids, sent, 3, spans)
    expected = {
        (i, j)
        for i in range(len(ids))
        for j in range(len(ids))
        if i != j and sent[i] == sent[j] and abs(i - j) <= spans[i]
    }
    assert set(zip(center.tolist(), context.tolist())) == expected and len(center) == len(expected)
    assert (np.abs(center - context) == dist).all()


@pytest.mark.parametrize(("shift", "alpha"), [(1.0, 1.0), (1.2, 0.75)])
def test_ppmi_matches_dense_numpy(shift: float, alpha: float) -> None:
    vocab = Vocab(["a", "b", "c", "d", "e"], np.ones(5))
    ids, offsets = encode(SENTENCES, vocab)
    x = cooccurrence(ids, offsets, 5, 2)
    dense = x.toarray()
    p_ij = dense / dense.sum()
    p_i = dense.sum(1) / dense.sum()
    p_j = dense.sum(0) ** alpha / (dense.sum(0) ** alpha).sum()
    with np.errstate(divide="ignore"):
        expected = np.maximum(0.0, np.log(p_ij / np.outer(p_i, p_j)) - np.log(shift))
    got = ppmi(x, shift=shift, alpha=alpha).toarray()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert (got > 0).any()
