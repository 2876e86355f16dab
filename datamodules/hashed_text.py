"""The text-classification family's DataModule base: labelled texts in, a tokenizer component's ids out of ``collate``.

The tokenizer (:mod:`kexue.text.tokenizers`) is a component: by default feature hashing of character n-grams (the
fastText trick, used for the averaged n-gram vectors of SVD分解(三), https://kexue.fm/archives/4233), or a BERT
folder's WordPiece (``--config bert``). It runs in ``collate``, i.e. in the DataLoader's workers
(``--data.num_workers``); the model receives tensors only, and its encoder's ``num_embeddings`` is linked from
:attr:`~LabelledTextDataModule.vocab_size`. The tokenizer's arguments are named in :attr:`featurization`, so a
checkpoint rebuilds it to featurise new text the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from kexue.data.datamodule import SplitDataModule
from kexue.nn.components import build_component, component_config
from kexue.text.tokenizers import TextTokenizer


class LabelledTextDataModule(SplitDataModule):
    """Batches ``{"ids": (B, T) LongTensor, "labels": targets}`` for training and evaluation (0 = padding), and
    ``{"ids", "texts"}`` for ``predict`` (the texts are printed beside their predictions).

    Subclasses pass their task's defaults for ``labels`` and ``tokenizer`` and implement :meth:`embedded`,
    :meth:`read` and :meth:`targets` (a batch of examples' targets as a tensor).

    Args:
        labels: label names in index order.
        tokenizer: texts -> ids ``(B, T)`` (:class:`~kexue.text.tokenizers.TextTokenizer`), e.g.
            :class:`~kexue.text.tokenizers.HashedNgrams` or :class:`~kexue.text.tokenizers.WordPiece`; in Python
            also its ``{"class_path", "init_args"}`` dict.
        batch_size: examples per batch.
        kwargs: the split files (labelled), ``split``, ``split_seed``, ``num_workers``: see
            :class:`~kexue.data.datamodule.SplitDataModule`.
    """

    featurization: ClassVar[tuple[str, ...]] = ("labels", "tokenizer")
    predict_target: object = None  # marks a raw predict line: collate keeps its text instead of a target

    def __init__(
        self,
        labels: list[str],
        tokenizer: TextTokenizer | dict,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ValueError(f"data.labels must be at least two distinct names, got {labels}")
        tokenizer = component_config(tokenizer)  # before the base saves the hyperparameters: see component_config
        super().__init__(batch_size=batch_size, **kwargs)
        self.tokenizer: TextTokenizer = build_component(tokenizer)

    @property
    def vocab_size(self) -> int:
        """The tokenizer's id count (linked to ``model.encoder.init_args.num_embeddings``)."""
        return self.tokenizer.vocab_size

    def targets(self, rows: list) -> Tensor:
        """The targets of a batch of examples as one tensor."""
        raise NotImplementedError

    def collate(self, batch: list[tuple[str, object]]) -> dict[str, object]:
        """``(text, target)`` examples -> ``{"ids": (B, T), "labels": ...}``; raw predict lines ->
        ``{"ids", "texts"}``."""
        texts = [text for text, _ in batch]
        out: dict[str, object] = {"ids": self.tokenizer(texts)}  # (B, T)
        if batch[0][1] is self.predict_target:
            out["texts"] = texts  # printed beside the predictions
        else:
            out["labels"] = self.targets([target for _, target in batch])
        return out


__all__ = ["LabelledTextDataModule"]
