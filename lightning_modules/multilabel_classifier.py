"""Multi-label text classification: an encoder component over the data tokenizer's ids, one score per label.

Post: 将“Softmax+交叉熵”推广到多标签分类问题 (https://kexue.fm/archives/7359) for ``loss="zlpr"``.
"""

from __future__ import annotations

from typing import Literal

from jsonargparse import lazy_instance
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelF1Score

from kexue.lightning_modules.encoder_classifier import EncoderClassifier
from kexue.losses import MultilabelCategoricalCrossEntropy
from kexue.metrics.missing import log_score
from kexue.nn import ConvEncoder
from kexue.nn.components import component_config


class MultilabelClassifier(EncoderClassifier):
    """Score ``L`` labels per text; batches are ``{"ids": (B, T), "labels": (B, L) multi-hot}``.

    - ``loss="zlpr"``: :func:`~kexue.losses.multilabel_categorical_crossentropy` on the scores ``s`` ``(B, L)``;
      label ``i`` is predicted when ``s_i > 0``, the threshold the loss trains for.
    - ``loss="bce"``: per-label binary cross-entropy on ``p = sigmoid(s)``; predicted when ``p_i > 0.5``.

    The two rules are the same test on ``s`` (``sigmoid(s) > 0.5 ⇔ s > 0``): runs differ only by what
    the loss made of the scores. Metrics: micro and macro F1 over labels (``val/``, ``test/``), and
    each label's F1 at test (``test/f1_<label>``). The default encoder is a width-3 character CNN (the task's
    measured default, BENCHMARKS.md, section multilabel); its ``num_embeddings`` is linked from the tokenizer's
    ``data.vocab_size``.

    Args:
        encoder: ``(B, T)`` ids -> ``(B, D)`` text vectors, with an ``output_dim`` attribute.
        labels: label names in index order (linked from the datamodule by the task).
        loss: ``"zlpr"`` or ``"bce"``.
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the whole optimizer).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        encoder: nn.Module = lazy_instance(  # noqa: B008 (a default jsonargparse shows as class_path/init_args)
            ConvEncoder, num_embeddings=2**14, embed_dim=64, hidden_dim=64, kernel_sizes=[3], dropout=0.2
        ),
        labels: list[str] = ["person", "place", "organisation", "time", "number"],  # noqa: B006
        loss: Literal["zlpr", "bce"] = "zlpr",
        lr: float = 3e-3,
        weight_decay: float = 0.0,
    ) -> None:
        if loss not in ("zlpr", "bce"):
            raise ValueError(f"unknown loss {loss!r}: expected 'zlpr' or 'bce'")
        encoder = component_config(encoder)  # before save_hyperparameters: see component_config
        super().__init__(encoder, labels, lr, weight_decay)
        self.save_hyperparameters()
        self.loss_fn = MultilabelCategoricalCrossEntropy() if loss == "zlpr" else nn.BCEWithLogitsLoss()
        L = len(labels)
        metrics = {"micro_f1": MultilabelF1Score(L, average="micro"), "macro_f1": MultilabelF1Score(L, average="macro")}
        self.set_metrics(MetricCollection(metrics), test_breakdown=MultilabelF1Score(L, average="none"))

    def decide(self, scores: Tensor) -> Tensor:
        """Predicted label sets ``(B, L)`` (0/1 ints) from scores ``(B, L)``: ``s > 0`` for ZLPR,
        ``sigmoid(s) > 0.5`` for BCE."""
        if self.hparams.loss == "bce":
            return (scores.sigmoid() > 0.5).long()
        return (scores > 0).long()

    def metric_inputs(self, scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Hard 0/1 label sets ``(B, L)`` (:meth:`decide`) and the targets as ints: torchmetrics would otherwise
        guess whether ``scores`` are logits."""
        return self.decide(scores), target.long()  # (B, L), (B, L)

    def on_test_epoch_end(self) -> None:
        f1 = self.test_breakdown.compute()  # (L,), each label's F1, synced across ranks
        with self.test_breakdown.sync_context():  # the gold count of each label, over every rank
            support = (self.test_breakdown.tp + self.test_breakdown.fn).tolist()  # (L,)
        self.test_breakdown.reset()
        for name, value, gold in zip(self.label_names, f1.tolist(), support):
            # a label the test split never has gets no F1 (torchmetrics' 0 would be a figure on nothing)
            log_score(self, f"test/f1_{name}", value, int(gold), f"no test example has the label {name!r}")

    def describe(self, scores: Tensor) -> list[str]:
        """Per row of scores ``(B, L)``: the predicted labels comma-separated (``-`` for none), a tab, each label's
        score (``s`` for ZLPR, ``sigmoid(s)`` for BCE)."""
        shown = scores.sigmoid() if self.hparams.loss == "bce" else scores  # (B, L)
        names = self.label_names
        lines = []
        for row, values in zip(self.decide(scores).tolist(), shown.tolist()):
            chosen = ",".join(name for name, on in zip(names, row) if on) or "-"
            lines.append(chosen + "\t" + " ".join(f"{name}={v:.3f}" for name, v in zip(names, values)))
        return lines
