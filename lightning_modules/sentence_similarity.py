"""Sentence vectors trained as a classification over groups of sentences that mean the same (task
``sentence_similarity``): hashed characters (plus hashed character bigrams), a bidirectional GRU, a pooled and
L2-normalised vector, then AM-Softmax (or plain softmax, the ablation) over the training groups; evaluated by
retrieval on held-out groups.

Post: 基于GRU和AM-Softmax的句子相似度模型 (https://kexue.fm/archives/5743). The classifier is only the
training scheme; what is kept and evaluated is the encoder (text -> unit vector), compared by cosine.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.losses import AMSoftmaxLoss, SoftmaxLoss
from kexue.metrics import RetrievalTopK
from kexue.nn import RecurrentEncoder
from kexue.nn.components import build_component, component_config
from kexue.optim import warmup_linear_decay

Batch = dict[str, Tensor | list[str]]  # see kexue.datamodules.sentence_similarity.SentenceSimilarityDataModule
KS = (1, 5, 10)


class SentenceSimilarity(L.LightningModule):
    """Encode hashed character features into unit vectors; batches are dicts with ``features`` ``(B, T, G)``,
    ``groups`` ``(B,)`` and ``index`` ``(B,)`` (predict: ``texts``, ``gallery`` ``(N, T, G)``, ``gallery_texts``).

    The post's model is char embedding -> GRU -> sentence vector -> AM-Softmax. Its defaults here differ where
    measured on the embedded corpus (BENCHMARKS.md#sentence_similarity): each character also carries its hashed
    bigram (``--data.tokenizer.bigrams``), the vector pools all steps instead of taking the last state and keeps the
    embeddings beside the GRU states (the encoder's ``pooling`` and ``skip``), the embedding is wide (256: a
    64-wide one loses most of the lexical overlap that same-group sentences share), and the learning rate warms
    up then decays. ``--data.tokenizer.bigrams false --model.encoder.pooling last --model.encoder.skip false
    --model.encoder.embed_dim 64`` is the post's shape.

    Args:
        num_classes: training groups, the softmax classes (linked from ``data.num_train_groups``; required).
        encoder: the network ``(B, T, G)`` ids -> ``(B, D)`` with an ``output_dim`` attribute ``D``
            (default :class:`kexue.nn.RecurrentEncoder`, a bidirectional GRU; its ``num_embeddings`` is linked
            from the tokenizer's ``data.vocab_size``).
        loss: ``"am_softmax"`` (cosine logits with margin ``m`` and scale ``s``, unit-norm class vectors)
            or ``"softmax"`` (free class weights on the unit sentence vector, no margin: the post's baseline).
        scale: ``s`` of AM-Softmax (the post: 30).
        margin: ``m`` of AM-Softmax (the post: 0.35); 0 gives the normalised softmax without margin.
        neighbours: how many nearest test sentences ``predict`` prints per line (``runtime_arguments``: the
            user's at ``predict``, not the checkpoint's).
        lr: AdamW peak learning rate (``--optimizer`` on the CLI replaces the optimizer and this schedule).
        weight_decay: AdamW weight decay (it would also shrink the embeddings of n-grams unseen in training,
            which still match exactly between test sentences: keep 0).
        warmup: fraction of the training steps over which the learning rate rises linearly from 0.
        decay: after the warm-up, decay the learning rate linearly to 0 at the last step (else constant).
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("neighbours",)  # not restored from a checkpoint

    def __init__(
        self,
        num_classes: int | None = None,
        encoder: nn.Module = lazy_instance(  # noqa: B008 (a default jsonargparse shows as class_path/init_args)
            RecurrentEncoder, num_embeddings=2**14, embed_dim=256, hidden_dim=64, cell="gru", dropout=0.1,
            pooling="mean", skip=True,
        ),
        loss: Literal["am_softmax", "softmax"] = "am_softmax",
        scale: float = 30.0,
        margin: float = 0.35,
        neighbours: int = 3,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        warmup: float = 0.05,
        decay: bool = True,
    ) -> None:
        super().__init__()
        if loss not in ("am_softmax", "softmax"):
            raise ValueError(f"model.loss must be 'am_softmax' or 'softmax', got {loss!r}")
        if num_classes is None:  # optional only so that a checkpoint can supply it on predict
            raise ValueError("model.num_classes is required (the CLI links it from data.num_train_groups)")
        if num_classes < 1 or scale <= 0 or margin < 0 or neighbours < 1 or not 0 <= warmup < 1:
            raise ValueError(
                "need model.num_classes >= 1, model.scale > 0, model.margin >= 0, model.neighbours >= 1, "
                f"0 <= model.warmup < 1, got {num_classes}, {scale}, {margin}, {neighbours}, {warmup}"
            )
        encoder = component_config(encoder)  # before save_hyperparameters: one new encoder per model, seeded
        self.save_hyperparameters()
        self.encoder = build_component(encoder)
        dim = self.encoder.output_dim
        if loss == "am_softmax":
            self.loss_fn: nn.Module = AMSoftmaxLoss(dim, num_classes, scale, margin)
        else:
            self.loss_fn = SoftmaxLoss(dim, num_classes)
        self.val_retrieval, self.test_retrieval = RetrievalTopK(KS), RetrievalTopK(KS)
        self._gallery: Tensor | None = None

    def forward(self, features: Tensor) -> Tensor:
        """Unit sentence vectors ``(B, D)`` of hashed ``features`` ``(B, T, G)`` (``D``: the encoder's output)."""
        return F.normalize(self.encoder(features), dim=-1)  # (B, D)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.loss_fn(self(batch["features"]), batch["groups"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["groups"]))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.val_retrieval.update(self(batch["features"]), batch["groups"], batch["index"])

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.test_retrieval.update(self(batch["features"]), batch["groups"], batch["index"])

    def _log_retrieval(self, metric: RetrievalTopK, stage: str) -> None:
        for k, value in zip(KS, metric.compute().tolist()):  # ranks all the stage's sentences at once
            self.log(f"{stage}/top{k}", value, prog_bar=k == 1)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval(self.val_retrieval, "val")

    def on_test_epoch_end(self) -> None:
        self._log_retrieval(self.test_retrieval, "test")

    def on_predict_start(self) -> None:
        self._gallery = None

    @torch.no_grad()
    def _encode_gallery(self, features: Tensor, batch_size: int = 256) -> Tensor:
        return torch.cat([self(features[i : i + batch_size]) for i in range(0, len(features), batch_size)])

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """Per line: ``text<TAB>cos<TAB>neighbour...`` for the nearest test sentences other than the text itself;
        a blank line gives an empty line."""
        if self._gallery is None:  # every predict batch carries the gallery: encode it once
            self._gallery = self._encode_gallery(batch["gallery"])  # (N, D)
        texts, gallery = batch["texts"], batch["gallery_texts"]
        k = min(self.hparams.neighbours + 1, len(gallery))  # one spare: the text may be in the gallery
        sim, idx = (self(batch["features"]) @ self._gallery.T).topk(k, dim=1)  # (B, k) cosines, gallery indices
        lines = []
        for text, row_sim, row_idx in zip(texts, sim.tolist(), idx.tolist()):
            found = [(c, gallery[j]) for c, j in zip(row_sim, row_idx) if gallery[j] != text]
            line = "\t".join([text, *(f"{c:.4f}\t{s}" for c, s in found[: self.hparams.neighbours])])
            lines.append(line if text.strip() else "")
        return lines

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = warmup_linear_decay(optimizer, math.ceil(hp.warmup * total), total, decay=hp.decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
