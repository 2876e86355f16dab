"""Unsupervised lexicon building from raw Chinese text, and segmentation with the lexicon found.

The recipe of 最小熵原理(二):“当机立断”之词库构建 (https://kexue.fm/archives/5476), packaged in
基于最小熵原理的NLP库:nlp zero (https://kexue.fm/archives/5597), with the boundary-entropy filter of
新词发现的信息熵方法与实现 (https://kexue.fm/archives/3491):

1. count every character n-gram up to ``max_n`` (:func:`count_ngrams`);
2. keep the *cohesive* ones: an n-gram whose every two-part split ``a|b`` is much likelier than chance,
   by pointwise mutual information :func:`pmi` ``log(N n_ab / (n_a n_b))`` or by the minimum-entropy
   criterion :func:`description_length_change` (merging ``a, b`` must shorten the corpus' code);
3. cut the corpus "decisively" (:func:`decisive_cut`): two neighbouring characters stay together when
   some kept n-gram covers both, and every resulting piece is a candidate word with its count;
4. drop candidates with an uncohesive sub-n-gram or too few distinct neighbours on one side
   (:func:`neighbour_entropy`, the free-boundary test);
5. segment new text by the unigram model over the lexicon: the split with the highest product of word
   probabilities (:func:`segment`), which in the minimum-entropy reading is the split of shortest code.

Everything is plain Python over ``str``; no tensors.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

from kexue.errors import UsageError

Cohesion = Literal["pmi", "entropy"]


def count_ngrams(texts: Iterable[str], max_n: int) -> Counter[str]:
    """Counts of every substring of length ``1..max_n`` of every text (overlapping occurrences all count)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for n in range(1, max_n + 1):
            counts.update(text[i : i + n] for i in range(len(text) - n + 1))
    return counts


def pmi(gram: str, counts: Mapping[str, int], total: int) -> float:
    """Cohesion of ``gram`` (length >= 2): the smallest pointwise mutual information over its splits,
    ``min_i log(total * n(gram) / (n(gram[:i]) * n(gram[i:])))`` in nats (post 3491 / 5476).

    The minimum, because a string is a word only if no split of it is a chance meeting of two parts.
    """
    n = counts[gram]
    return min(math.log(total * n / (counts[gram[:i]] * counts[gram[i:]])) for i in range(1, len(gram)))


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


def description_length_change(n_ab: int, n_a: int, n_b: int, total: int, same: bool = False) -> float:
    """Change in the corpus' code length ``L = -sum_x N_x log(N_x / N)`` (nats) when all ``n_ab``
    adjacent pairs ``a b`` become one new token ``ab`` (post 5476: minimum entropy merges when this is < 0).

    ``L = N log N - sum_x N_x log N_x``; after the merge ``N -> N - n_ab``, ``N_a -> N_a - n_ab``,
    ``N_b -> N_b - n_ab`` (``N_a -> N_a - 2 n_ab`` when ``same``, i.e. ``a == b``) and ``ab`` appears
    ``n_ab`` times. Counts are clamped at 0 (substring counts of overlapping repeats can exceed them).
    """
    if same:
        before = _xlogx(n_a)
        after = _xlogx(max(n_a - 2 * n_ab, 0))
    else:
        before = _xlogx(n_a) + _xlogx(n_b)
        after = _xlogx(max(n_a - n_ab, 0)) + _xlogx(max(n_b - n_ab, 0))
    return _xlogx(total - n_ab) - _xlogx(total) - after - _xlogx(n_ab) + before


def entropy_cohesion(gram: str, counts: Mapping[str, int], total: int) -> float:
    """Cohesion of ``gram`` by the minimum-entropy criterion: the smallest code-length *saving* per
    occurrence, ``-max_i description_length_change(...) / n(gram)`` over its splits (nats; > 0 saves)."""
    n = counts[gram]
    worst = max(
        description_length_change(n, counts[gram[:i]], counts[gram[i:]], total, gram[:i] == gram[i:])
        for i in range(1, len(gram))
    )
    return -worst / n


def joins_punctuation(gram: str) -> bool:
    """True when ``gram`` has a punctuation character (Unicode category P*) and is not one punctuation
    mark repeated: ``说，`` and ``：“`` are frequent and cohesive, yet no words; ``——`` and ``……`` are."""
    return any(unicodedata.category(ch).startswith("P") for ch in gram) and len(set(gram)) > 1


def cohesive_ngrams(
    counts: Mapping[str, int], total: int, min_count: int, threshold: float, cohesion: Cohesion = "pmi"
) -> set[str]:
    """N-grams of length >= 2 seen at least ``min_count`` times whose cohesion reaches
    ``threshold * (len - 1)``: the bar rises with each extra character, as the post's 5, 25, 125
    probability ratios for 2-, 3-, 4-grams (``threshold = log 5`` reproduces them for ``pmi``).

    N-grams that glue punctuation to anything but itself are left out (:func:`joins_punctuation`).
    """
    score = pmi if cohesion == "pmi" else entropy_cohesion
    return {
        g
        for g, c in counts.items()
        if len(g) >= 2
        and c >= min_count
        and not joins_punctuation(g)
        and score(g, counts, total) >= threshold * (len(g) - 1)
    }


def decisive_cut(text: str, grams: set[str], max_n: int) -> list[str]:
    """Pieces of ``text``: characters ``i, i+1`` stay in one piece iff some n-gram of ``grams`` (length
    ``2..max_n``) covers both ("当机立断", post 5476). ``"".join(pieces) == text``."""
    if not text:
        return []
    linked = [False] * (len(text) - 1)  # linked[i]: no cut between text[i] and text[i+1]
    for i in range(len(text) - 1):
        for n in range(2, min(max_n, len(text) - i) + 1):
            if text[i : i + n] in grams:
                linked[i : i + n - 1] = [True] * (n - 1)
    pieces, start = [], 0
    for i, keep in enumerate(linked):
        if not keep:
            pieces.append(text[start : i + 1])
            start = i + 1
    return pieces + [text[start:]]


def entropy(counts: Iterable[int]) -> float:
    """Shannon entropy (nats) of the distribution proportional to ``counts``."""
    counts = [c for c in counts if c > 0]
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts) if total else 0.0


def neighbour_entropy(pieces: Iterable[Sequence[str]]) -> dict[str, tuple[float, float]]:
    """Left and right neighbour entropies (nats) of every multi-character piece of cut sentences.

    ``pieces``: one list of pieces per sentence. The neighbour of a piece is the adjacent character of
    the next piece over; a sentence edge counts as a new, distinct neighbour each time (an edge says
    nothing against a word). A word is free on a side when many different characters border it there.
    """
    left: dict[str, Counter[str]] = defaultdict(Counter)
    right: dict[str, Counter[str]] = defaultdict(Counter)
    edges = 0
    for sentence in pieces:
        for k, piece in enumerate(sentence):
            if len(piece) < 2:
                continue
            edges += 1
            left[piece][sentence[k - 1][-1] if k else f"\x00{edges}"] += 1
            right[piece][sentence[k + 1][0] if k + 1 < len(sentence) else f"\x01{edges}"] += 1
    return {w: (entropy(left[w].values()), entropy(right[w].values())) for w in left}


@dataclass
class WordDiscoveryConfig:
    """Settings of :func:`discover_words` (see the module docstring for the steps they control).

    Args:
        max_n: longest n-gram counted (cohesion is judged on n-grams up to this length).
        min_count: an n-gram and a final word must occur at least this many times.
        threshold: cohesion bar per extra character (nats): ``pmi`` or ``entropy`` score >= threshold * (n - 1).
        cohesion: ``"pmi"`` (pointwise mutual information) or ``"entropy"`` (code-length saving per occurrence).
        min_entropy: a word needs at least this neighbour entropy (nats) on both sides; 0 turns the test off.
    """

    max_n: int = 4
    min_count: int = 4
    threshold: float = 2.0
    cohesion: Cohesion = "pmi"
    min_entropy: float = 0.0


def discover_words(texts: Sequence[str], config: WordDiscoveryConfig) -> Counter[str]:
    """The lexicon of ``texts``: word -> count of its pieces in the decisive cut, single characters included.

    Texts are cut at whitespace first. Raises :class:`~kexue.errors.UsageError` when the texts are empty
    or no word of two or more characters survives the filters (the settings are too strict for the corpus).
    """
    texts = [piece for t in texts for piece in t.split()]  # whitespace is a boundary we are given
    if not texts:
        raise UsageError("the corpus is empty: no text to discover words from")
    counts = count_ngrams(texts, config.max_n)
    total = sum(len(t) for t in texts)
    grams = cohesive_ngrams(counts, total, config.min_count, config.threshold, config.cohesion)
    cut = [decisive_cut(t, grams, config.max_n) for t in texts]
    pieces = Counter(p for sentence in cut for p in sentence)

    def cohesive_inside(word: str) -> bool:  # every sub-n-gram of 3+ characters must itself be cohesive
        return all(word[j : j + n] in grams for n in range(3, config.max_n + 1) for j in range(len(word) - n + 1))

    freedom = neighbour_entropy(cut) if config.min_entropy > 0 else {}
    lexicon: Counter[str] = Counter()
    for word, count in pieces.items():
        if len(word) == 1:
            lexicon[word] = count
        elif (
            count >= config.min_count
            and cohesive_inside(word)
            and min(freedom.get(word, (math.inf,))) >= (config.min_entropy)
        ):
            lexicon[word] = count
    if not any(len(w) > 1 for w in lexicon):
        raise UsageError(
            f"no word of two or more characters passed min_count={config.min_count}, "
            f"threshold={config.threshold}, min_entropy={config.min_entropy} on {total} characters: "
            "lower them or give a larger corpus"
        )
    return lexicon


def segment(text: str, lexicon: Mapping[str, int], total: int | None = None, max_len: int | None = None) -> list[str]:
    """The most probable split of ``text`` under the unigram model ``P(w) = lexicon[w] / total``.

    Any single character may be a word; one missing from the lexicon counts 1 (as jieba does), longer
    strings only when in the lexicon. Dynamic programming over end positions, ``O(len(text) * max_len)``:
    ``best[j] = max_l best[j - l] + log P(text[j-l:j])``. Ties go to the longer last word.
    ``total`` defaults to the sum of the counts, ``max_len`` to the longest word.
    """
    if not text:
        return []
    total = total or sum(lexicon.values()) or 1
    max_len = max_len or max(map(len, lexicon), default=1)
    log_total = math.log(total)
    best = [0.0] + [-math.inf] * len(text)
    back = [0] * (len(text) + 1)
    for j in range(1, len(text) + 1):
        for n in range(min(max_len, j), 0, -1):  # longest first: a tie keeps the longer word
            count = lexicon.get(text[j - n : j], 1 if n == 1 else 0)
            if count:
                score = best[j - n] + math.log(count) - log_total
                if score > best[j]:
                    best[j], back[j] = score, n
    words, j = [], len(text)
    while j:
        words.append(text[j - back[j] : j])
        j -= back[j]
    return words[::-1]


def export_lexicon(lexicon: Mapping[str, int], path: str | PathLike) -> Path:
    """Write ``lexicon`` as a jieba user dictionary: one ``word count`` line per word, most frequent first
    (``jieba.load_userdict(path)`` reads it). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(lexicon.items(), key=lambda wc: (-wc[1], wc[0]))
    path.write_text("".join(f"{w} {c}\n" for w, c in rows if w.strip() and " " not in w), encoding="utf-8")
    return path


def top_words(lexicon: Mapping[str, int], k: int, min_length: int = 2) -> list[tuple[str, int]]:
    """The ``k`` most frequent words of at least ``min_length`` characters, ``(word, count)``."""
    rows = [(w, c) for w, c in lexicon.items() if len(w) >= min_length]
    return sorted(rows, key=lambda wc: (-wc[1], wc[0]))[:k]


__all__ = [
    "WordDiscoveryConfig",
    "count_ngrams",
    "pmi",
    "description_length_change",
    "entropy_cohesion",
    "joins_punctuation",
    "cohesive_ngrams",
    "decisive_cut",
    "entropy",
    "neighbour_entropy",
    "discover_words",
    "segment",
    "export_lexicon",
    "top_words",
]
