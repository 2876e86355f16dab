"""Generated text: :func:`distinct_n` (diversity) and :func:`copy_rate` (verbatim copies of the training text), as
task ``cond_lm`` reports them. Post: 基于Conditional Layer Normalization的条件文本生成
(https://kexue.fm/archives/7124).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n of generated texts (Li et al. 2016): distinct character n-grams / all character n-grams, pooled
    over ``texts``; 0 when there are none."""
    grams = Counter(text[i : i + n] for text in texts for i in range(len(text) - n + 1))
    return len(grams) / max(1, sum(grams.values()))


def copy_rate(samples: Sequence[str], training: Iterable[str]) -> float:
    """Share of ``samples`` equal to some text of ``training`` (copied verbatim); 0 for no samples."""
    seen = set(training)
    return sum(s in seen for s in samples) / max(1, len(samples))


__all__ = ["copy_rate", "distinct_n"]
