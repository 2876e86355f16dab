"""Sentence vectors trained as a classification over groups of sentences that mean the same (task
``sentence_similarity``): hashed characters, a bidirectional GRU, an L2-normalised vector, then
AM-Softmax (or plain softmax, the ablation) over the training groups; evaluated by retrieval on held-out groups.

Post: 基于GRU和AM-Softmax的句子相似度模型 (https://kexue.fm/archives/5743). The classifier is only the
training scheme; what is kept and evaluated is the encoder (text -> unit vector), compared by cosine.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.losses import AMSoftmaxLoss, SoftmaxLoss
from kexue.metrics import RetrievalTopK
from kexue.nn import RecurrentEncoder
from kexue.text import char_ngrams, hash_tokens, pad_sequences

Batch = tuple[list[str], Tensor]
KS = (1, 5, 10)


class SentenceSimilarity(L.LightningModule):
    """Encode raw strings into unit vectors; batches are ``(texts: list[str], groups: (B,))``.

    Args:
        loss: ``"am_softmax"`` (cosine logits with margin ``m`` and scale ``s``, unit-norm class vectors)
            or ``"softmax"`` (free class weights on the unit sentence vector, no margin: the post's baseline).
        scale: ``s`` of AM-Softmax (the post: 30).
        margin: ``m`` of AM-Softmax (the post: 0.35); 0 gives the normalised softmax without margin.
        cell: ``"gru"`` (the post) or ``"lstm"``, bidirectional, max-pooled over time.
        num_buckets: hash buckets for the characters (embedding rows).
        max_length: characters kept per sentence.
        embed_dim: character embedding size.
        hidden_dim: RNN size per direction; the sentence vector has ``2 * hidden_dim`` dimensions.
        dropout: encoder dropout.
        num_classes: training groups; None = taken from the datamodule when fitting (saved in the checkpoint).
        neighbours: how many nearest test sentences ``predict`` prints per line.
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the optimizer).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        loss: Literal["am_softmax", "softmax"] = "am_softmax",
        scale: float = 30.0,
        margin: float = 0.35,
        cell: Literal["gru", "lstm"] = "gru",
        num_buckets: int = 2**14,
        max_length: int = 64,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        dropout: float = 0.1,
        num_classes: int | None = None,
        neighbours: int = 3,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if loss not in ("am_softmax", "softmax"):
            raise ValueError(f"model.loss must be 'am_softmax' or 'softmax', got {loss!r}")
        if scale <= 0 or margin < 0 or neighbours < 1:
            raise ValueError(
                f"need model.scale > 0, model.margin >= 0, model.neighbours >= 1, got {scale}, {margin}, {neighbours}"
            )
        self.save_hyperparameters()
        self.encoder = RecurrentEncoder(num_buckets, embed_dim, hidden_dim, cell, dropout)
        self.loss_fn: nn.Module | None = self._make_loss(num_classes) if num_classes else None
        self.val_retrieval, self.test_retrieval = RetrievalTopK(KS), RetrievalTopK(KS)
        self._gallery: tuple[list[str], Tensor] | None = None

    def _make_loss(self, num_classes: int) -> nn.Module:
        hp, dim = self.hparams, self.encoder.output_dim
        if hp.loss == "am_softmax":
            return AMSoftmaxLoss(dim, num_classes, hp.scale, hp.margin)
        return SoftmaxLoss(dim, num_classes)

    def setup(self, stage: str) -> None:
        # The softmax has one class per training group, known only once the data is read.
        if self.loss_fn is None and stage == "fit":
            self.hparams.num_classes = self.trainer.datamodule.num_train_groups
            self.loss_fn = self._make_loss(self.hparams.num_classes)

    def featurize(self, texts: list[str]) -> Tensor:
        """Hashed character ids ``(B, T)`` of ``texts``; 0 is padding."""
        hp = self.hparams
        ids = [hash_tokens(char_ngrams(t, (1,), hp.max_length), hp.num_buckets) for t in texts]
        return pad_sequences(ids).to(self.device)  # (B, T)

    def forward(self, texts: list[str]) -> Tensor:
        """Unit sentence vectors ``(B, 2 * hidden_dim)`` of raw ``texts``."""
        return F.normalize(self.encoder(self.featurize(texts)), dim=-1)  # (B, D)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        texts, groups = batch
        loss = self.loss_fn(self(texts), groups)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(texts))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.val_retrieval.update(self(batch[0]), batch[1])

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.test_retrieval.update(self(batch[0]), batch[1])

    def _log_retrieval(self, metric: RetrievalTopK, stage: str) -> None:
        for k, value in zip(KS, metric.compute().tolist()):  # ranks all the stage's sentences at once
            self.log(f"{stage}/top{k}", value, prog_bar=k == 1)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval(self.val_retrieval, "val")

    def on_test_epoch_end(self) -> None:
        self._log_retrieval(self.test_retrieval, "test")

    @torch.no_grad()
    def _encode_all(self, texts: list[str], batch_size: int = 256) -> Tensor:
        return torch.cat([self(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])  # (N, D)

    def on_predict_start(self) -> None:
        gallery = self.trainer.datamodule.gallery()
        self._gallery = (gallery, self._encode_all(gallery))

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """Per line: ``text<TAB>cos<TAB>neighbour...`` for the nearest test sentences other than the text itself."""
        texts, _ = batch
        gallery, vectors = self._gallery
        k = min(self.hparams.neighbours + 1, len(gallery))  # one spare: the text may be in the gallery
        sim, idx = (self(texts) @ vectors.T).topk(k, dim=1)  # (B, k) cosines, (B, k) gallery indices
        lines = []
        for text, row_sim, row_idx in zip(texts, sim.tolist(), idx.tolist()):
            found = [(c, gallery[j]) for c, j in zip(row_sim, row_idx) if gallery[j] != text]
            lines.append("\t".join([text, *(f"{c:.4f}\t{s}" for c, s in found[: self.hparams.neighbours])]))
        return lines

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
