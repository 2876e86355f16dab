"""Text classification LightningModule: hashed char n-grams, a text encoder, a linear head.

Posts: 文本情感分类（四）：更好的损失函数 (https://kexue.fm/archives/4293) for ``loss="threshold"``,
SVD分解(三) (https://kexue.fm/archives/4233) for the averaged-vectors ``encoder="mean"``.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from kexue.losses import classification_loss
from kexue.nn import ConvEncoder, MeanEmbeddingEncoder, RecurrentEncoder
from kexue.platform.figures import confusion_matrix_figure, log_figure
from kexue.text import char_ngrams, hash_tokens, pad_sequences


class TextClassifier(L.LightningModule):
    """Classify texts given as raw strings; batches are ``(texts: list[str], labels: (B,))``.

    Args:
        labels: class names in index order (linked from the datamodule by the task).
        encoder: ``"mean"`` (mean of n-gram embeddings, fastText-style), ``"cnn"``, or a
            bidirectional ``"gru"`` / ``"lstm"``.
        ngrams: char n-gram orders hashed into features, e.g. ``[1, 2]``.
        num_buckets: hash buckets for the n-gram features (embedding rows).
        max_length: characters kept per text.
        embed_dim: embedding size.
        hidden_dim: CNN channels per kernel width, or RNN size per direction.
        kernel_sizes: CNN kernel widths.
        pool: CNN pooling over time, ``"max"`` or ``"mean"``.
        dropout: dropout in the encoder.
        loss: ``"ce"`` or ``"threshold"`` (the post's loss).
        margin: ``m`` of the threshold loss.
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the whole optimizer).
        weight_decay: AdamW weight decay.
        embed_init_std: standard deviation of the normal initialisation of the n-gram embeddings
            (padding row kept at zero); ``None`` keeps PyTorch's ``N(0, 1)``. For ``encoder="mean"`` a
            small value (``0.01``) matters: with ``N(0, 1)`` rows the mean of a short text's few
            n-grams starts as a large random vector that the head fits and the data must then undo,
            and the model overfits before it generalises (BENCHMARKS.md, section sentiment).
    """

    def __init__(
        self,
        labels: list[str] = ["neg", "pos"],  # noqa: B006
        encoder: Literal["mean", "cnn", "gru", "lstm"] = "mean",
        ngrams: list[int] = [1, 2],  # noqa: B006
        num_buckets: int = 2**18,
        max_length: int = 256,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        kernel_sizes: list[int] = [2, 3, 4],  # noqa: B006
        pool: Literal["max", "mean"] = "max",
        dropout: float = 0.3,
        loss: Literal["ce", "threshold"] = "threshold",
        margin: float = 0.6,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        embed_init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if encoder == "mean":
            self.encoder: nn.Module = MeanEmbeddingEncoder(num_buckets, embed_dim, dropout)
        elif encoder == "cnn":
            self.encoder = ConvEncoder(num_buckets, embed_dim, hidden_dim, kernel_sizes, dropout, pool)
        elif encoder in ("gru", "lstm"):
            self.encoder = RecurrentEncoder(num_buckets, embed_dim, hidden_dim, encoder, dropout)
        else:
            raise ValueError(f"unknown encoder {encoder!r}: expected 'mean', 'cnn', 'gru' or 'lstm'")
        if embed_init_std is not None:
            if embed_init_std < 0:
                raise ValueError(f"model.embed_init_std must be >= 0, got {embed_init_std}")
            embedding: nn.Embedding = self.encoder.embedding
            with torch.no_grad():
                nn.init.normal_(embedding.weight, std=embed_init_std)
                embedding.weight[embedding.padding_idx].zero_()
        self.head = nn.Linear(self.encoder.output_dim, len(labels))
        self.loss_fn = classification_loss(loss, margin)
        C = len(labels)
        metrics = MetricCollection({"acc": MulticlassAccuracy(C, average="micro"), "f1": MulticlassF1Score(C)})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(C)

    def featurize(self, texts: list[str]) -> Tensor:
        """Hashed char n-gram ids ``(B, T)`` of ``texts``; 0 is padding."""
        hp = self.hparams
        ids = [hash_tokens(char_ngrams(t, hp.ngrams, hp.max_length), hp.num_buckets) for t in texts]
        return pad_sequences(ids, min_length=max(hp.kernel_sizes)).to(self.device)  # (B, T)

    def forward(self, texts: list[str]) -> Tensor:
        """Class logits ``(B, C)`` for raw ``texts``."""
        return self.head(self.encoder(self.featurize(texts)))  # (B, C)

    def training_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> Tensor:
        texts, y = batch
        loss = self.loss_fn(self(texts), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(texts))
        return loss

    def _evaluate(self, batch: tuple[list[str], Tensor], stage: str) -> Tensor:
        texts, y = batch
        logits = self(texts)
        self.log(f"{stage}/loss", self.loss_fn(logits, y), batch_size=len(texts), sync_dist=True)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, y)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=len(texts))
        return logits

    def validation_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> None:
        logits = self._evaluate(batch, "test")
        self.test_confusion.update(logits, batch[1])

    def on_test_epoch_end(self) -> None:
        matrix = self.test_confusion.compute()  # (C, C), synced across ranks
        self.test_confusion.reset()
        log_figure(self.trainer, "test/confusion_matrix", confusion_matrix_figure(matrix, self.hparams.labels))

    def predict_step(self, batch: tuple[list[str], Tensor], batch_idx: int) -> list[str]:
        """One ``label<TAB>probability`` line per text (``kexue predict`` prints them)."""
        texts, _ = batch
        prob, idx = self(texts).softmax(-1).max(-1)  # (B,), (B,)
        return [f"{self.hparams.labels[i]}\t{p:.4f}" for i, p in zip(idx.tolist(), prob.tolist())]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
