"""Sentence vectors trained as a classification over groups of sentences that mean the same (task
``sentence_similarity``): hashed characters (plus hashed character bigrams), a bidirectional GRU, a pooled and
L2-normalised vector, then AM-Softmax (or plain softmax, the ablation) over the training groups; evaluated by
retrieval on held-out groups.

Post: 基于GRU和AM-Softmax的句子相似度模型 (https://kexue.fm/archives/5743). The classifier is only the
training scheme; what is kept and evaluated is the encoder (text -> unit vector), compared by cosine.
"""

from __future__ import annotations

import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.losses import AMSoftmaxLoss, SoftmaxLoss
from kexue.metrics import RetrievalTopK
from kexue.nn import RecurrentEncoder
from kexue.optim import PiecewiseLinearLR
from kexue.text import char_features, pad_sequences

Batch = tuple[list[str], Tensor]
KS = (1, 5, 10)


def sentence_features(text: str, max_length: int, num_buckets: int, bigrams: bool) -> list[list[int]]:
    """Hashed ids ``(T, G)`` of one sentence: per character its id and, with ``bigrams``, the id of the bigram it
    starts (``G = 2``; :func:`kexue.text.char_features` without the bigram that ends there);
    ``T = min(len(text), max_length)``, at least one step (an empty text is one padding step)."""
    rows = char_features(text[:max_length], num_buckets, bigrams)
    if bigrams:
        rows = [[row[0], row[2]] for row in rows]
    return rows or [[0] * (2 if bigrams else 1)]


class SentenceSimilarity(L.LightningModule):
    """Encode raw strings into unit vectors; batches are ``(texts: list[str], groups: (B,))``.

    The post's model is char embedding -> GRU -> sentence vector -> AM-Softmax. Its defaults here differ where
    measured on the embedded corpus (BENCHMARKS.md#sentence_similarity): each character also carries its hashed
    bigram (``bigrams``), the vector pools all steps instead of taking the last state (``pooling``) and keeps the
    embeddings beside the GRU states (``skip``), the embedding is wide (``embed_dim`` 256: a 64-wide one loses
    most of the lexical overlap that same-group sentences share), and the learning rate warms up then decays.
    ``--model.bigrams false --model.pooling last --model.skip false --model.embed_dim 64`` is the post's shape.

    Args:
        loss: ``"am_softmax"`` (cosine logits with margin ``m`` and scale ``s``, unit-norm class vectors)
            or ``"softmax"`` (free class weights on the unit sentence vector, no margin: the post's baseline).
        scale: ``s`` of AM-Softmax (the post: 30).
        margin: ``m`` of AM-Softmax (the post: 0.35); 0 gives the normalised softmax without margin.
        cell: ``"gru"`` (the post) or ``"lstm"``, bidirectional.
        pooling: ``"mean"`` or ``"max"`` over the characters, or ``"last"`` (final states, as in the post).
        skip: pool over ``[RNN state; embedding]`` per character (see :class:`kexue.nn.RecurrentEncoder`).
        bigrams: add the hashed embedding of the bigram each character starts to its own (:func:`sentence_features`).
        num_buckets: hash buckets for characters and bigrams (embedding rows).
        max_length: characters kept per sentence.
        embed_dim: character (and bigram) embedding size.
        hidden_dim: RNN size per direction.
        dropout: encoder dropout.
        num_classes: training groups; None = taken from the datamodule when fitting (saved in the checkpoint).
        neighbours: how many nearest test sentences ``predict`` prints per line.
        lr: AdamW peak learning rate (``--optimizer`` on the CLI replaces the optimizer and this schedule).
        weight_decay: AdamW weight decay (it would also shrink the embeddings of n-grams unseen in training,
            which still match exactly between test sentences: keep 0).
        warmup: fraction of the training steps over which the learning rate rises linearly from 0.
        decay: after the warm-up, decay the learning rate linearly to 0 at the last step (else constant).
    """

    def __init__(
        self,
        loss: Literal["am_softmax", "softmax"] = "am_softmax",
        scale: float = 30.0,
        margin: float = 0.35,
        cell: Literal["gru", "lstm"] = "gru",
        pooling: Literal["mean", "max", "last"] = "mean",
        skip: bool = True,
        bigrams: bool = True,
        num_buckets: int = 2**14,
        max_length: int = 64,
        embed_dim: int = 256,
        hidden_dim: int = 64,
        dropout: float = 0.1,
        num_classes: int | None = None,
        neighbours: int = 3,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        warmup: float = 0.05,
        decay: bool = True,
    ) -> None:
        super().__init__()
        if loss not in ("am_softmax", "softmax"):
            raise ValueError(f"model.loss must be 'am_softmax' or 'softmax', got {loss!r}")
        if scale <= 0 or margin < 0 or neighbours < 1 or not 0 <= warmup < 1:
            raise ValueError(
                "need model.scale > 0, model.margin >= 0, model.neighbours >= 1, 0 <= model.warmup < 1, "
                f"got {scale}, {margin}, {neighbours}, {warmup}"
            )
        self.save_hyperparameters()
        self.encoder = RecurrentEncoder(num_buckets, embed_dim, hidden_dim, cell, dropout, pooling, skip)
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
        """Hashed ids ``(B, T, G)`` of ``texts`` (:func:`sentence_features`); 0 is padding."""
        hp = self.hparams
        rows = [sentence_features(t, hp.max_length, hp.num_buckets, hp.bigrams) for t in texts]
        return pad_sequences(rows).to(self.device)  # (B, T, G)

    def forward(self, texts: list[str]) -> Tensor:
        """Unit sentence vectors ``(B, D)`` of raw ``texts`` (``D``: the encoder's ``output_dim``)."""
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

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = math.ceil(hp.warmup * total)
        # Linear warm-up reaching 1 at step `warm` - 1, then (with `decay`) linear decay to 0 at the last step.
        points = {0: 1 / warm, warm - 1: 1.0} if warm else {0: 1.0}
        if hp.decay:
            points.update({warm: 1.0, total: 0.0})
        schedule = PiecewiseLinearLR(optimizer, points)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
