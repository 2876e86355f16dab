"""word2vec: skip-gram or CBOW with negative sampling on sparse embeddings (task ``word2vec``).

Post: “噪声对比估计”杂谈 (https://kexue.fm/archives/5617); the losses live in :mod:`kexue.losses`. The
unigram counts of the noise distribution and the expected steps per epoch come from the DataModule through
the task's ``data_links``; the noise distribution is then a buffer of the model, saved in its checkpoints.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from kexue.lightning_modules.word_vectors import WordVectorModule
from kexue.losses import cbow_negative_sampling, skipgram_negative_sampling


class Word2Vec(WordVectorModule):
    """Skip-gram or CBOW with negative sampling, on sparse embeddings updated by plain SGD.

    Batches: skip-gram ``(target (B,), context (B,))``; CBOW ``(target (B,), contexts (B, 2W))`` with -1
    padding (the input is the mean of the context vectors). The loss is summed over the batch, so
    ``lr`` means what word2vec's ``alpha`` means (a step per pair), decayed linearly to ``lr * min_lr_ratio``
    over ``steps_per_epoch * max_epochs`` steps.

    Args:
        dim: vector size.
        mode: ``"skipgram"`` or ``"cbow"``.
        negative: noise words per pair (``K``).
        ns_exponent: noise distribution ``~ count^ns_exponent``.
        lr: initial SGD learning rate (word2vec's 0.025 for skip-gram; 0.05 suits CBOW).
        min_lr_ratio: final learning rate as a share of ``lr``.
        share_noise: skip-gram pairs (CBOW windows) that share one draw of ``K`` noise words (1: word2vec's
            independent draws per pair). Sharing keeps the expected gradient and turns the noise scores into small
            matrix products: 8 trained 2.5x faster than 1 at the same quality (BENCHMARKS.md, word2vec training
            time).
        train_threads: torch intra-op threads while training on the CPU (restored afterwards; ``None``: leave
            them). A step is many small gathers and scatters, which split badly across threads: an epoch of the
            default task took 5.6 s with 1 thread and 23.4 s with 2 on a 2-core machine with other jobs running.
        vocab_size, words, language: the words of the rows of ``inp`` and ``out`` (see
            :class:`WordVectorModule`; linked from the data).
        counts: corpus count of each word (linked from ``data.counts``); ``None`` when a checkpoint brings the
            noise distribution. Not a hyperparameter: ``V`` numbers.
        steps_per_epoch: expected batches per epoch (linked from ``data.steps_per_epoch``).
    """

    def __init__(
        self,
        dim: int = 100,
        mode: Literal["skipgram", "cbow"] = "skipgram",
        negative: int = 5,
        ns_exponent: float = 0.75,
        lr: float = 0.025,
        min_lr_ratio: float = 1e-4,
        share_noise: int = 8,
        train_threads: int | None = 1,
        vocab_size: int | None = None,
        words: Sequence[str] | None = None,
        language: str = "en",
        counts: Sequence[int] | None = None,
        steps_per_epoch: int = 1,
    ) -> None:
        super().__init__(vocab_size, words, language)
        if dim < 1 or negative < 1 or lr <= 0 or share_noise < 1 or (train_threads is not None and train_threads < 1):
            raise ValueError(
                f"model.dim, model.negative, model.share_noise and model.train_threads must be >= 1 and "
                f"model.lr > 0, got {dim}, {negative}, {share_noise}, {train_threads}, {lr}"
            )
        if counts is not None and len(counts) != vocab_size:
            raise ValueError(f"model.counts holds {len(counts)} counts, model.vocab_size is {vocab_size}")
        self.save_hyperparameters(ignore=["words", "counts"])
        self.inp = nn.Embedding(vocab_size, dim, sparse=True)
        self.out = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)  # word2vec's init: small inputs, zero outputs
        nn.init.zeros_(self.out.weight)
        noise = torch.as_tensor(counts if counts is not None else [1] * vocab_size, dtype=torch.float64)
        noise = noise**ns_exponent  # (V,)
        self.register_buffer("noise", (noise / noise.sum()).float())

    def vectors(self) -> Tensor:
        return self.inp.weight

    def forward(self, target: Tensor, context: Tensor) -> Tensor:
        """Per-example loss ``(B,)`` of a batch (see the class docstring for the shapes)."""
        groups = -(-len(target) // self.hparams.share_noise)
        noise = torch.multinomial(self.noise, groups * self.hparams.negative, replacement=True).view(groups, -1)
        if context.dim() == 2:  # CBOW: the mean of the window's vectors, padding (-1) left out
            return cbow_negative_sampling(self.inp.weight, self.out.weight, context, target, noise)  # (B,)
        return skipgram_negative_sampling(self.inp.weight, self.out.weight, context, target, noise)  # (B,)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        losses = self(*batch)
        # Only on the steps the logger writes: `self.log` costs ~4 ms a call, a fifth of a word2vec step.
        trainer = self._trainer  # `self.trainer` raises when detached
        if trainer is None or self.global_step % max(1, trainer.log_every_n_steps) == 0:
            self.log("train/loss", losses.mean(), prog_bar=True)
        return losses.sum()

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.SGD(self.parameters(), lr=hp.lr)
        total = max(1, hp.steps_per_epoch * max(1, self.trainer.max_epochs or 1))
        decay = lambda step: max(hp.min_lr_ratio, 1.0 - step / total)  # noqa: E731 (word2vec's linear decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
