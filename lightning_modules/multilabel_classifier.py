"""Multi-label text classification: :class:`TextClassifier`'s featurisation and encoders, one score per label.

Post: 将“Softmax+交叉熵”推广到多标签分类问题 (https://kexue.fm/archives/7359) for ``loss="zlpr"``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelF1Score

from kexue.lightning_modules.text_classifier import TextClassifier
from kexue.losses import MultilabelCategoricalCrossEntropy


class MultilabelClassifier(TextClassifier):
    """Score ``L`` labels per raw text; batches are ``(texts: list[str], targets: (B, L) multi-hot)``.

    Everything up to the scores ``s`` ``(B, L)`` (hashed char n-grams, encoder, linear head) is
    :class:`TextClassifier`'s; only the loss, the decision rule and the metrics differ.

    - ``loss="zlpr"``: :func:`~kexue.losses.multilabel_categorical_crossentropy` on ``s``; label ``i``
      is predicted when ``s_i > 0``, the threshold the loss trains for.
    - ``loss="bce"``: per-label binary cross-entropy on ``p = sigmoid(s)``; predicted when ``p_i > 0.5``.

    The two rules are the same test on ``s`` (``sigmoid(s) > 0.5 ⇔ s > 0``): runs differ only by what
    the loss made of the scores. Metrics: micro and macro F1 over labels (``val/``, ``test/``), and
    each label's F1 at test (``test/f1_<label>``).

    Args:
        labels: label names in index order (linked from the datamodule by the task).
        loss: ``"zlpr"`` or ``"bce"``.
        others: as in :class:`TextClassifier` (``encoder``, ``ngrams``, ``num_buckets``, ``max_length``,
            ``embed_dim``, ``hidden_dim``, ``kernel_sizes``, ``pool``, ``dropout``, ``lr``, ``weight_decay``,
            ``embed_init_std``).
    """

    def __init__(
        self,
        labels: list[str] = ["person", "place", "organisation", "time", "number"],  # noqa: B006
        encoder: Literal["mean", "cnn", "gru", "lstm"] = "cnn",
        ngrams: list[int] = [1],  # noqa: B006
        num_buckets: int = 2**14,
        max_length: int = 256,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        kernel_sizes: list[int] = [3],  # noqa: B006
        pool: Literal["max", "mean"] = "max",
        dropout: float = 0.2,
        loss: Literal["zlpr", "bce"] = "zlpr",
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        embed_init_std: float | None = None,
    ) -> None:
        if loss not in ("zlpr", "bce"):
            raise ValueError(f"unknown loss {loss!r}: expected 'zlpr' or 'bce'")
        if len(labels) < 2:  # torchmetrics' multi-label F1 needs two; one label is a binary task
            raise ValueError(f"model.labels must name at least two labels, got {labels}")
        super().__init__(
            labels,
            encoder,
            ngrams,
            num_buckets,
            max_length,
            embed_dim,
            hidden_dim,
            kernel_sizes,
            pool,
            dropout,
            "ce",  # the parent's single-label loss, replaced below
            0.6,
            lr,
            weight_decay,
            embed_init_std,
        )
        self.save_hyperparameters()  # again, from this frame: updates the parent's with this class's arguments
        for saved in (self.hparams, self._hparams_initial):  # the parent's margin is not an argument here
            saved.pop("margin", None)
        del self.test_confusion  # single-label only
        self.loss_fn = MultilabelCategoricalCrossEntropy() if loss == "zlpr" else nn.BCEWithLogitsLoss()
        L = len(labels)
        metrics = MetricCollection(
            {"micro_f1": MultilabelF1Score(L, average="micro"), "macro_f1": MultilabelF1Score(L, average="macro")}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_per_label = MultilabelF1Score(L, average="none")

    def decide(self, scores: Tensor) -> Tensor:
        """Predicted label sets ``(B, L)`` (0/1 ints) from scores ``(B, L)``: ``s > 0`` for ZLPR,
        ``sigmoid(s) > 0.5`` for BCE."""
        if self.hparams.loss == "bce":
            return (scores.sigmoid() > 0.5).long()
        return (scores > 0).long()

    def _evaluate(self, batch: tuple[list[str], Tensor], stage: str) -> Tensor:
        texts, y = batch
        scores = self(texts)  # (B, L)
        self.log(f"{stage}/loss", self.loss_fn(scores, y), batch_size=len(texts), sync_dist=True)
        # Hard 0/1 predictions: torchmetrics would otherwise guess whether ``scores`` are logits.
        pred, target = self.decide(scores), y.long()  # (B, L), (B, L)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(pred, target)
        if stage == "test":
            self.test_per_label.update(pred, target)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=len(texts))
        return scores

    def test_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        f1 = self.test_per_label.compute()  # (L,), synced across ranks
        self.test_per_label.reset()
        for name, value in zip(self.hparams.labels, f1.tolist()):
            self.log(f"test/f1_{name}", value)

    def predict_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> list[str]:
        """One line per text: the predicted labels comma-separated (``-`` for none), a tab, each label's
        score (``s`` for ZLPR, ``sigmoid(s)`` for BCE)."""
        scores = self(batch[0])  # (B, L)
        shown = scores.sigmoid() if self.hparams.loss == "bce" else scores
        names = self.hparams.labels
        lines = []
        for row, values in zip(self.decide(scores).tolist(), shown.tolist()):
            chosen = ",".join(name for name, on in zip(names, row) if on) or "-"
            lines.append(chosen + "\t" + " ".join(f"{name}={v:.3f}" for name, v in zip(names, values)))
        return lines
