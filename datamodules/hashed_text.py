"""The text-classification family's DataModule base: labelled texts in, hashed char n-gram ids out of ``collate``.

Featurisation is feature hashing of character n-grams (the fastText trick, used for the averaged n-gram vectors of
SVD分解(三), https://kexue.fm/archives/4233): stateless, so the settings named in :attr:`featurization` are all a
checkpoint needs to featurise new text the same way. It runs in ``collate``, i.e. in the DataLoader's workers
(``--data.num_workers``); the model receives tensors only.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from torch import Tensor

from kexue.data.datamodule import SplitDataModule, check_at_least
from kexue.text import char_ngrams, hash_tokens, pad_sequences


def hashed_ngram_ids(texts: Sequence[str], ngrams: Sequence[int], num_buckets: int, max_length: int) -> Tensor:
    """``(B, T)`` LongTensor of the texts' hashed char n-gram ids in ``[1, num_buckets)``, right-padded with 0.

    Each text is cut to ``max_length`` characters, then its n-grams of every order in ``ngrams`` are hashed
    (:func:`kexue.text.hash_tokens`, CRC-32). ``T >= 1``: a blank text is one padding id.
    """
    return pad_sequences([hash_tokens(char_ngrams(t, ngrams, max_length), num_buckets) for t in texts])  # (B, T)


class HashedTextDataModule(SplitDataModule):
    """Batches ``{"ids": (B, T) LongTensor, "texts": list[str], "labels": targets}`` for training and evaluation, and
    ``{"ids", "texts"}`` for ``predict``. The texts ride along to be printed by ``predict`` and to be tokenised by an
    encoder that reads texts (a BERT folder, :class:`kexue.models.BertTextEncoder`).

    Subclasses pass their task's defaults for ``labels``, ``ngrams`` and ``num_buckets`` and implement
    :meth:`embedded`, :meth:`read` and :meth:`targets` (a batch of examples' targets as a tensor).

    Args:
        train_path: labelled file replacing the embedded training split.
        val_path: same, replacing the validation split.
        test_path: same, replacing the test split.
        predict_path: one text per line for ``kexue predict`` (default: the test texts).
        labels: label names in index order.
        ngrams: char n-gram orders hashed into features, e.g. ``[1, 2, 3]``.
        num_buckets: hash buckets, i.e. embedding rows of the model's encoder (linked by the task); id 0 is padding.
        max_length: characters of a text kept before n-grams are taken.
        split: train/val/test fractions of the embedded corpus.
        split_seed: seed of the fixed split (not the training seed, so the split never moves).
        batch_size: examples per batch.
        num_workers: DataLoader workers (featurisation runs in them).
    """

    featurization: ClassVar[tuple[str, ...]] = ("labels", "ngrams", "num_buckets", "max_length")
    predict_target: object = None  # marks a raw predict line: collate keeps its text instead of a target

    def __init__(
        self,
        labels: list[str],
        ngrams: list[int],
        num_buckets: int,
        max_length: int = 256,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.check_split(split)
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"data.labels must be at least two distinct names, got {labels}")
        if not ngrams or min(ngrams) < 1:
            raise ValueError(f"data.ngrams must be one or more orders >= 1, got {ngrams}")
        check_at_least(num_buckets=(num_buckets, 2), max_length=(max_length, 1), batch_size=(batch_size, 1),
                       num_workers=(num_workers, 0))
        self.save_hyperparameters()

    def targets(self, rows: list) -> Tensor:
        """The targets of a batch of examples as one tensor."""
        raise NotImplementedError

    def collate(self, batch: list[tuple[str, object]]) -> dict[str, object]:
        """``(text, target)`` examples -> ``{"ids": (B, T), "texts": [...], "labels": ...}`` (no ``"labels"`` for raw
        predict lines)."""
        hp = self.hparams
        texts = [text for text, _ in batch]
        out: dict[str, object] = {"ids": hashed_ngram_ids(texts, hp.ngrams, hp.num_buckets, hp.max_length),
                                  "texts": texts}  # the texts: printed by predict, tokenised by a BERT encoder
        if batch[0][1] is not self.predict_target:
            out["labels"] = self.targets([target for _, target in batch])
        return out


__all__ = ["HashedTextDataModule", "hashed_ngram_ids"]
