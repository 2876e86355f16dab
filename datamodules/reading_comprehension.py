"""Task ``reading_comprehension``'s data: (passage, question, answers) rows packed as UniLM's
``[CLS] passage [SEP] question [SEP] answer [SEP]`` (万能的seq2seq, https://kexue.fm/archives/7115).

Default corpus: **templated** extractive questions over the DuIE sample that ``kexue fetch duie`` brings
(:func:`kexue.data.qa.templated_questions`: ``"{subject}的{predicate}是什么？"``, answer the object, passage the
sentence), cut by the fixed seeded split. User files: WebQA, SogouQA or JSON lines (:func:`kexue.data.qa.read_qa`).
Characters are the tokens, one id each: the ``tokenizer`` component, by default
:class:`kexue.models.tokenizers.BertCharTokenizer` built from the training split (kept in the checkpoint), or
:class:`kexue.models.tokenizers.BertFolderCharTokenizer` over a BERT folder's ``vocab.txt`` (``--config
bert_folder`` sets it with the folder's network).
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from jsonargparse import lazy_instance
from torch.utils.data import DataLoader

from kexue.data.datamodule import FittedTokenizerData, SplitDataModule, check_at_least
from kexue.data.qa import QAExample, QAFormat, read_qa, templated_questions
from kexue.data.readers import json_field, json_lines
from kexue.errors import UsageError
from kexue.models.tokenizers import BertCharTokenizer
from kexue.nn.components import build_component, component_config
from kexue.seq2seq import CharVocab, unilm_batch


class ReadingComprehensionDataModule(FittedTokenizerData, SplitDataModule):
    """Batches ``{"ids", "segments", "padding", "labels"}`` ``(B, T)`` (:func:`kexue.seq2seq.unilm_batch`) plus, for
    decoding, ``"sources"`` (``[CLS] passage [SEP] question [SEP]`` id lists), ``"passage_ids"`` and
    ``"passages"`` (the passage as the model sees it), ``"questions"``, ``"answers"`` (gold tuples; ``()`` for
    predict lines).

    Args:
        train_path, val_path, test_path: QA files replacing the embedded splits (format ``data.format``).
        predict_path: JSON lines ``{"passage", "question"}``; a blank line gives an empty answer.
        format: ``auto``, ``webqa``, ``sogouqa`` or ``jsonl``.
        require_span: an answer not in its passage is an error (extractive data; the copy constraint needs it).
        tokenizer: characters -> ids (fitted on the training split's passages, questions and answers; restored
            from a checkpoint); its ``vocab_size`` and ``vocabulary`` are linked to the model.
        max_length: tokens of a whole example (linked to the fresh BERT's positions); the passage gets what the
            question (cut at ``max_question_length``), the answer and the 4 specials leave. In training a longer
            passage is cut to a window holding the answer; in evaluation and predict it keeps its start.
        max_question_length, max_answer_length: characters kept (``max_answer_length`` is linked to decoding).
        kwargs: ``split``, ``split_seed``, ``batch_size``, ``num_workers``: see
            :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length", "max_question_length",
                                                "max_answer_length")

    def __init__(
        self,
        format: QAFormat = "auto",
        require_span: bool = True,
        tokenizer: BertCharTokenizer = lazy_instance(BertCharTokenizer, min_count=1),  # noqa: B008
        max_length: int = 128,
        max_question_length: int = 24,
        max_answer_length: int = 16,
        **kwargs: Any,
    ) -> None:
        check_at_least(max_question_length=(max_question_length, 1), max_answer_length=(max_answer_length, 1))
        if max_length < max_question_length + max_answer_length + 5:
            raise ValueError(f"data.max_length={max_length} leaves no passage after max_question_length + "
                             f"max_answer_length + 4 specials ({max_question_length + max_answer_length + 4})")
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(**kwargs)
        self.tokenizer: BertCharTokenizer = build_component(tokenizer)

    def embedded(self) -> list[QAExample]:
        from kexue.data.duie import duie_examples

        return templated_questions(duie_examples())

    def read(self, path: str) -> list[QAExample]:
        return read_qa(path, self.hparams.format, self.hparams.require_span)

    @property
    def vocab(self) -> CharVocab:
        """The fitted tokenizer's vocabulary."""
        return self.fitted_tokenizer.vocab

    def training_texts(self) -> list[str]:
        self.setup("fit")
        return [r.passage + r.question + "".join(r.answers) for r in self.splits["train"]]

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "predict" and hp.predict_path:
            if "predict" not in self.splits:
                self.splits["predict"] = self._predict_lines(hp.predict_path)
            return
        super().setup("fit" if stage == "predict" else stage)
        if stage == "predict" and "predict" not in self.splits:  # the test passages and questions
            self.splits["predict"] = [QAExample(r.passage, r.question, ()) for r in self.splits["test"]]

    @staticmethod
    def _predict_lines(path: str) -> list[QAExample]:
        rows = []
        for lineno, record in json_lines(path, "questions", keep_blank=True):
            if record is None:  # a blank line: an empty answer keeps output line i the answer to input line i
                rows.append(QAExample("", "", ()))
                continue
            fail = partial(UsageError, path=path, line=lineno)
            rows.append(QAExample(json_field(record, "passage", str, fail), json_field(record, "question", str, fail),
                                  ()))
        return rows

    def _passage(self, row: QAExample, budget: int, training: bool) -> str:
        passage = row.passage
        if len(passage) <= budget:
            return passage
        at = passage.find(row.answers[0]) if training and row.answers else -1
        if at < 0 or at + len(row.answers[0]) <= budget:
            return passage[:budget]
        start = min(at - (budget - len(row.answers[0])) // 2, len(passage) - budget)
        return passage[max(0, start) : max(0, start) + budget]

    def train_dataloader(self) -> DataLoader:
        loader = super().train_dataloader()
        return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=loader.sampler,
                          num_workers=loader.num_workers, collate_fn=partial(self.collate, training=True),
                          drop_last=loader.drop_last)  # the base's rule (a BatchNorm model: no batch of one)

    def collate(self, batch: list[QAExample], training: bool = False) -> dict[str, Any]:
        """Pack rows; see the class. Rows with answers carry their target (``training``: a long passage is cut
        to a window around it), predict rows only the source."""
        hp, vocab = self.hparams, self.vocab
        budget = hp.max_length - hp.max_question_length - hp.max_answer_length - 4
        passages = [self._passage(r, budget, training) for r in batch]
        questions = [r.question[: hp.max_question_length] for r in batch]
        passage_ids = [vocab.encode(p) for p in passages]
        sources = [[vocab.cls, *p, vocab.sep, *vocab.encode(q), vocab.sep] for p, q in zip(passage_ids, questions)]
        targets = [[*vocab.encode(r.answers[0][: hp.max_answer_length]), vocab.sep] if r.answers else []
                   for r in batch]
        return {**unilm_batch(sources, targets, vocab.pad), "sources": sources, "passage_ids": passage_ids,
                "passages": passages, "questions": [r.question for r in batch],
                "answers": [r.answers for r in batch]}


__all__ = ["ReadingComprehensionDataModule"]
