"""Task ``relation_extraction``'s data: sentences with their (subject, predicate, object) triples, as the pointer
labels of 用bert4keras做三元组抽取 (https://kexue.fm/archives/7161).

Default corpus: the DuIE sample that ``kexue fetch duie`` brings (casrel-datautils 1.1.5 ``data/test.json``,
13,417 sentences, 17 of its 19 predicates used), cut by the fixed seeded split. User files: any layout
:func:`kexue.data.duie.read_duie` reads (LIC2019 / DuIE 1.0 and 2.0 JSON lines, CasRel JSON), with the predicates
of ``--data.schema`` (``all_50_schemas``, ``duie_schema.json`` or CasRel ``relation.json``) or else of the training
file.

Characters are the units (the post's Chinese BERT tokenises Chinese one character a token): the tokenizer component
makes each character ``G`` ids in the DataLoader workers, hashed (:class:`kexue.text.tokenizers.HashedChars`, for the
char CNN / DGCNN encoders) or one BERT vocabulary id (:class:`~kexue.text.tokenizers.BertChars`, for
:class:`kexue.models.BertCharEncoder`). The batches also carry the texts: the triples are read off them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from jsonargparse import lazy_instance

from kexue.data.datamodule import SplitDataModule, check_at_least
from kexue.data.duie import Triple, duie_examples, duie_predicates, read_duie, read_schema
from kexue.errors import UsageError
from kexue.nn.components import build_component, component_config
from kexue.text.tokenizers import CharTokenizer, HashedChars

Row = tuple[str, tuple[Triple, ...] | None]  # (text, triples); None for a raw predict line


def pointer_spans(text: str, triples: tuple[Triple, ...], predicates: dict[str, int]) -> dict[tuple[int, int], list]:
    """``{(subject start, subject end): [(object start, object end, predicate id), ...]}`` of the triples whose
    subject and object both lie in ``text`` (ends inclusive, first occurrence, as the post's ``search``); a triple
    cut off by truncation or with a predicate outside ``predicates`` gives no label (it still counts as gold)."""
    spans: dict[tuple[int, int], list] = {}
    for s, p, o in triples:
        i, j = text.find(s), text.find(o)
        if i < 0 or j < 0 or p not in predicates:
            continue
        spans.setdefault((i, i + len(s) - 1), []).append((j, j + len(o) - 1, predicates[p]))
    return spans


class RelationExtractionDataModule(SplitDataModule):
    """Batches of sentences for the pointer model.

    Every batch has ``"ids"``: ``(B, T, G)`` ids per character (0 = padding); ``"mask"`` ``(B, T)`` real
    characters; and ``"texts"`` (the characters the model sees, ``max_length`` at most). Sentences with triples add
    ``"subject_labels"`` ``(B, T, 2)`` start/end of every subject, ``"subject_ids"`` ``(B, 2)`` one subject span and
    ``"object_labels"`` ``(B, T, P, 2)`` its objects' start/end per predicate. In training the subject is drawn as
    the post draws it (a random subject start, then a random subject end at or after it: sometimes a span that is
    no subject, whose objects are all 0, which teaches the object head to stay silent on a wrong subject); in
    evaluation it is the first subject. Evaluation batches also carry ``"triples"`` (the gold sets, from the whole
    sentence) and ``"index"`` ``(B,)``.

    Args:
        train_path, val_path, test_path: DuIE / LIC2019 / CasRel files replacing the embedded splits.
        predict_path: raw sentences, one per line (default: the test sentences).
        schema: the predicate list (``all_50_schemas`` / ``duie_schema.json`` / ``relation.json``); a triple whose
            predicate is not in it is an error naming file and line. Default: the fetched DuIE sample's 19, or with
            user files and no schema the predicates of the training file.
        predicates: the predicate names in id order (filled from the above; a checkpoint restores them).
        max_length: characters per sentence the model sees (longer ones are cut; their triples beyond the cut are
            still gold, so they count as misses: nothing is silently dropped from the score). A BERT encoder needs
            ``max_length + 2`` positions.
        kwargs: ``split``, ``split_seed``, ``batch_size``, ``num_workers``: see
            :class:`~kexue.data.datamodule.SplitDataModule`.
        tokenizer: characters -> ``G`` ids each (:class:`~kexue.text.tokenizers.CharTokenizer`); by default a
            character's hashed id and its two bigrams' (``G = 3``). Its ``vocab_size`` and ``num_features`` are
            linked to the encoder's ``num_embeddings`` and ``num_features``.
    """

    featurization: ClassVar[tuple[str, ...]] = ("predicates", "max_length", "tokenizer")

    def __init__(
        self,
        schema: str | None = None,
        predicates: list[str] | None = None,
        max_length: int = 128,
        tokenizer: CharTokenizer = lazy_instance(HashedChars, num_buckets=2**16, bigrams=True),  # noqa: B008
        **kwargs: Any,
    ) -> None:
        check_at_least(max_length=(max_length, 1))
        if predicates is not None and (len(set(predicates)) != len(predicates) or not predicates):
            raise ValueError(f"data.predicates must be distinct names, at least one, got {predicates}")
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: one shared default
        super().__init__(**kwargs)
        self.tokenizer: CharTokenizer = build_component(tokenizer)
        if schema is not None and predicates is None:
            self.hparams.predicates = read_schema(schema)

    @property
    def vocab_size(self) -> int:
        """The tokenizer's id count (linked to ``model.encoder.init_args.num_embeddings``)."""
        return self.tokenizer.vocab_size

    @property
    def num_features(self) -> int:
        """``G``, ids per character (linked to ``model.encoder.init_args.num_features``)."""
        return self.tokenizer.num_features

    def _known(self) -> list[str] | None:
        """The predicates fixed before reading user files (argument, schema, or the asset when it is used)."""
        hp = self.hparams
        if hp.predicates is None and not all((hp.train_path, hp.val_path, hp.test_path)):
            hp.predicates = duie_predicates()
        return hp.predicates

    @property
    def predicate_list(self) -> list[str]:
        """The predicates in id order (linked to ``model.predicates``); read from the training file, sorted, when
        nothing else names them."""
        if self._known() is None:
            self.setup("fit")
            self.hparams.predicates = sorted({p for _, triples in self.splits["train"] for _, p, _ in triples})
            if not self.hparams.predicates:
                raise UsageError("no triples in the training file: no predicates to learn", self.hparams.train_path)
        return list(self.hparams.predicates)

    def embedded(self) -> list[Row]:
        self._known()
        return [(ex.text, ex.triples) for ex in duie_examples()]

    def read(self, path: str) -> list[Row]:
        return [(ex.text, ex.triples) for ex in read_duie(path, self._known())]

    def setup(self, stage: str) -> None:
        if stage == "predict" and not self.hparams.predict_path and "predict" not in self.splits:
            super().setup("fit")  # the test sentences, without their triples
            self.splits["predict"] = [(row[0], None) for row in self.splits["test"]]
        super().setup(stage)
        self.index_evaluation_rows()

    def input_length(self, name: str) -> tuple[int, str]:
        """The split's longest sentence in characters as the model sees it (cut at ``max_length``)."""
        longest = max((len(row[0]) for row in self.splits[name]), default=0)
        return min(self.hparams.max_length, longest), "data.max_length"

    def collate(self, batch: list[tuple[Any, ...]]) -> dict[str, Any]:
        """Featurise ``(text, triples[, index])`` rows (``triples`` None for raw predict lines); see the class."""
        hp = self.hparams
        texts = [row[0][: hp.max_length] for row in batch]
        T = max(1, *map(len, texts))
        mask = torch.zeros(len(batch), T, dtype=torch.bool)  # (B, T)
        for i, text in enumerate(texts):
            mask[i, : len(text)] = True
        out: dict[str, Any] = {"ids": self.tokenizer(texts), "mask": mask, "texts": texts}  # (B, T, G), (B, T)
        if batch[0][1] is None:  # raw predict lines, printed whole
            return {**out, "lines": [row[0] for row in batch]}
        evaluation = len(batch[0]) > 2
        index = {p: k for k, p in enumerate(self.predicate_list)}
        subject_labels = torch.zeros(len(batch), T, 2)  # (B, T, 2)
        subject_ids = torch.zeros(len(batch), 2, dtype=torch.long)  # (B, 2)
        object_labels = torch.zeros(len(batch), T, len(index), 2)  # (B, T, P, 2)
        for i, (text, row) in enumerate(zip(texts, batch)):
            spans = pointer_spans(text, row[1], index)
            if not spans:
                continue
            for s, e in spans:
                subject_labels[i, s, 0] = subject_labels[i, e, 1] = 1
            if evaluation:
                chosen = next(iter(spans))
            else:  # the post's draw: a subject start, then any subject end at or after it
                starts = sorted({s for s, _ in spans})
                start = starts[int(torch.randint(len(starts), ()))]
                ends = sorted({e for _, e in spans if e >= start})
                chosen = (start, ends[int(torch.randint(len(ends), ()))])
            subject_ids[i] = torch.as_tensor(chosen)
            for s, e, p in spans.get(chosen, []):
                object_labels[i, s, p, 0] = object_labels[i, e, p, 1] = 1
        out.update(subject_labels=subject_labels, subject_ids=subject_ids, object_labels=object_labels)
        if evaluation:
            out["triples"] = [set(row[1]) for row in batch]
            out["index"] = torch.as_tensor([row[2] for row in batch], dtype=torch.long)  # (B,)
        return out


__all__ = ["RelationExtractionDataModule", "pointer_spans"]
