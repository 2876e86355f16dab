"""Simpler GloVe: one set of vectors, no biases, fitted to the log PMI of the co-occurrence matrix
(task ``simpler_glove``; 更别致的词向量模型(四)/(六), https://kexue.fm/archives/4675, /4677)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from kexue.lightning_modules.word_vectors import WordVectorModule
from kexue.losses import glove_weight, simpler_glove_loss


class SimplerGloVe(WordVectorModule):
    """Loss per non-zero entry of the co-occurrence matrix (https://kexue.fm/archives/4675):
    ``w(x_ij) (<v_i, v_j> - log(P(i,j) / (P(i) P(j))))^2`` with ``P(i,j) = x_ij / sum(x)``, ``P(i)`` the
    row marginal, and ``w(x) = (x / x_max)^alpha`` (capped at 1 with ``cap_weight``). Summed over the batch
    and minimised by Adagrad on sparse gradients (GloVe's optimiser).

    Batches: ``(rows (B,), cols (B,), counts (B,), log_pmi (B,))``; the log PMI comes with the entries because it
    needs the marginals of the whole matrix, which the DataModule has and a batch has not.

    Args:
        dim: vector size.
        x_max: weighting scale.
        alpha: weighting exponent.
        cap_weight: cap the weight at 1 (as GloVe); without, frequent pairs keep growing in weight.
        lr: Adagrad learning rate.
        vocab_size, words, language: the words of the rows of ``emb`` (see :class:`WordVectorModule`;
            linked from the data).
    """

    def __init__(
        self,
        dim: int = 100,
        x_max: float = 100.0,
        alpha: float = 0.75,
        cap_weight: bool = True,
        lr: float = 0.05,
        vocab_size: int | None = None,
        words: Sequence[str] | None = None,
        language: str = "en",
    ) -> None:
        super().__init__(vocab_size, words, language)
        if dim < 1 or x_max <= 0 or lr <= 0:
            raise ValueError(f"model.dim must be >= 1, model.x_max and model.lr > 0, got {dim}, {x_max}, {lr}")
        self.save_hyperparameters(ignore=["words"])
        self.emb = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.emb.weight, -0.5 / dim, 0.5 / dim)

    def vectors(self) -> Tensor:
        return self.emb.weight

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        i, j, x, log_pmi = batch  # (B,) each
        hp = self.hparams
        weight = glove_weight(x, hp.x_max, hp.alpha, hp.cap_weight)  # (B,)
        losses = simpler_glove_loss(self.emb(i), self.emb(j), log_pmi, weight)  # (B,)
        self.log("train/loss", losses.mean(), prog_bar=True)
        return losses.sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(self.parameters(), lr=self.hparams.lr)
