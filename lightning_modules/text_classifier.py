"""Text classification LightningModule: an encoder component over the data tokenizer's ids, a linear head, one label.

Posts: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293) for ``loss="threshold"``,
SVD分解(三) (https://kexue.fm/archives/4233) for the default averaged-vectors encoder.
"""

from __future__ import annotations

from typing import Literal

from jsonargparse import lazy_instance
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from kexue.lightning_modules.encoder_classifier import EncoderClassifier
from kexue.losses import classification_loss
from kexue.nn import MeanEmbeddingEncoder
from kexue.nn.components import component_config
from kexue.platform.figures import log_confusion_matrix


class TextClassifier(EncoderClassifier):
    """Classify texts into one of ``C`` labels; batches are ``{"ids": (B, T), "labels": (B,)}``.

    The defaults are the sentiment task's measured ones (BENCHMARKS.md, section sentiment): the mean of 8-wide
    n-gram embeddings drawn from ``N(0, 0.01^2)`` (with ``N(0, 1)`` rows the mean of a short text's few n-grams
    starts as a large random vector and the model overfits before it generalises), no dropout, cross-entropy,
    AdamW lr 0.005. ``--model.encoder kexue.nn.ConvEncoder`` or ``kexue.nn.RecurrentEncoder`` swaps the encoder;
    its ``num_embeddings`` is linked from the tokenizer's ``data.vocab_size`` by the task.

    Metrics: accuracy and macro F1 (``val/``, ``test/``), and a confusion-matrix figure at test.

    Args:
        encoder: ``(B, T)`` ids -> ``(B, D)`` text vectors, with an ``output_dim`` attribute.
        labels: class names in index order (linked from the datamodule by the task).
        loss: ``"ce"`` or ``"threshold"`` (the post's loss).
        margin: ``m`` of the threshold loss.
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the whole optimizer).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        encoder: nn.Module = lazy_instance(  # noqa: B008 (a default jsonargparse shows as class_path/init_args)
            MeanEmbeddingEncoder, num_embeddings=2**18, embed_dim=8, dropout=0.0, embed_init_std=0.01
        ),
        labels: list[str] = ["neg", "pos"],  # noqa: B006 (jsonargparse needs the literal default)
        loss: Literal["ce", "threshold"] = "ce",
        margin: float = 0.6,
        lr: float = 0.005,
        weight_decay: float = 0.0,
    ) -> None:
        encoder = component_config(encoder)  # before save_hyperparameters: see component_config
        super().__init__(encoder, labels, lr, weight_decay)
        self.save_hyperparameters()
        self.loss_fn = classification_loss(loss, margin)
        C = len(labels)
        metrics = MetricCollection({"acc": MulticlassAccuracy(C, average="micro"), "f1": MulticlassF1Score(C)})
        self.set_metrics(metrics, test_breakdown=MulticlassConfusionMatrix(C))

    def on_test_epoch_end(self) -> None:
        log_confusion_matrix(self.trainer, "test/confusion_matrix", self.test_breakdown, self.label_names)

    def describe(self, scores: Tensor) -> list[str]:
        """``label<TAB>probability`` of the most probable class, per row of logits ``(B, C)``."""
        prob, idx = scores.softmax(-1).max(-1)  # (B,), (B,)
        return [f"{self.label_names[i]}\t{p:.4f}" for i, p in zip(idx.tolist(), prob.tolist())]
