"""JoSE: words and paragraphs on the unit sphere, trained by a max-margin loss and Riemannian SGD (task ``jose``).

Post: JoSE:球面上的词向量和句向量 (https://kexue.fm/archives/7063), on Meng et al. 2019, "Spherical Text
Embedding". As Doc2Vec, a paragraph (a corpus line) is one more "word" co-occurring with all of its words, trained
skip-gram style with negative sampling; unlike it every vector lies on the unit sphere and the loss is a hinge on
cosines. The optimiser is :class:`kexue.optim.RiemannianSGD`. Batches, vocabulary, noise counts and paragraph count
come from :class:`kexue.datamodules.skipgram.SkipGramDataModule` with ``paragraphs=True`` (``conf/jose.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.lightning_modules.word_vectors import WordVectorModule
from kexue.optim.riemannian import RiemannianSGD
from kexue.text.vectors import save_word2vec_format


def spherical_hinge_loss(
    u: Tensor, v: Tensor, d: Tensor, u_neg: Tensor, margin: float = 0.15, hinge: Literal["joint", "separate"] = "joint"
) -> Tensor:
    """JoSE's loss per ``(u, v, d)`` tuple, summed over its ``K`` noise words (https://kexue.fm/archives/7063).

    ``"joint"``, the post's (and the paper's) objective, one hinge on the sum of the two cosines::

        max(0, m - cos(u, v) - cos(u, d) + cos(u', v) + cos(u', d))

    ``"separate"``, what the authors' code (``jose.c``) trains: one hinge for the context word and one for the
    paragraph, ``max(0, m - cos(u, v) + cos(u', v)) + max(0, m - cos(u, d) + cos(u', d))``. With the joint hinge
    a tuple whose word-context cosines alone clear the margin stops training its paragraph vector.

    ``u`` is a word of paragraph ``d``, ``v`` a word within the window of ``u``, ``u'`` a noise word in place of
    ``u``. On the sphere ``cos(a, b) = a . b``: the cosines are dot products, not renormalised, because normalising
    inside the loss would hand the optimiser an already projected gradient, and the radial part of the Euclidean
    gradient is what the paper's cosine-scaled step reads. A noise word equal to ``u`` adds a constant (the margin)
    and no gradient.

    Shapes: ``u``, ``v``, ``d`` (B, D) unit rows; ``u_neg`` (B, K, D) -> (B,).
    """
    if u.shape != v.shape or u.shape != d.shape or u_neg.dim() != 3 or u_neg.shape[::2] != u.shape:
        raise ValueError(f"u, v, d must be (B, D) and u_neg (B, K, D), got {tuple(u.shape)}, {tuple(v.shape)}, "
                         f"{tuple(d.shape)}, {tuple(u_neg.shape)}")
    if hinge not in ("joint", "separate"):
        raise ValueError(f"hinge must be 'joint' or 'separate', got {hinge!r}")
    candidates = torch.cat([u[:, None], u_neg], dim=1)  # (B, 1 + K, D): the word, then its noise words
    scores = torch.bmm(candidates, torch.stack([v, d], dim=-1))  # (B, 1 + K, 2): cos(c, v), cos(c, d)
    if hinge == "joint":
        scores = scores.sum(-1, keepdim=True)  # (B, 1 + K, 1): cos(c, v) + cos(c, d)
    return (margin - scores[:, :1] + scores[:, 1:]).clamp_min(0).sum((1, 2))  # (B,)


class SphericalHingeLoss(nn.Module):
    """Module form of :func:`spherical_hinge_loss` (https://kexue.fm/archives/7063): ``(B, D) x 3, (B, K, D)
    -> (B,)`` with a fixed ``margin`` and ``hinge``."""

    def __init__(self, margin: float = 0.15, hinge: Literal["joint", "separate"] = "joint") -> None:
        super().__init__()
        self.margin, self.hinge = margin, hinge

    def forward(self, u: Tensor, v: Tensor, d: Tensor, u_neg: Tensor) -> Tensor:
        return spherical_hinge_loss(u, v, d, u_neg, self.margin, self.hinge)


def unit_rows(num: int, dim: int) -> nn.Embedding:
    """A sparse ``(num, dim)`` embedding with rows uniform in ``[-0.5/dim, 0.5/dim)^dim`` then normalised, as the
    JoSE code initialises its tables (https://kexue.fm/archives/7063)."""
    table = nn.Embedding(num, dim, sparse=True)
    with torch.no_grad():
        table.weight.uniform_(-0.5 / dim, 0.5 / dim)
        table.weight.div_(table.weight.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return table


class JoSE(WordVectorModule):
    """Joint spherical word and paragraph embeddings: word vectors ``u`` (evaluated and exported), context vectors
    ``v`` and paragraph vectors ``d``, all unit rows, fitted by :func:`spherical_hinge_loss` with ``negative`` noise
    words per pair drawn from ``count^ns_exponent`` and :class:`~kexue.optim.RiemannianSGD` (learning rate decayed
    linearly to ``lr * min_lr_ratio``, as the JoSE and word2vec code; the loss is summed over the batch, so ``lr``
    is a step per tuple).

    Batches: ``(center (B,), context (B,), paragraph (B,))`` ids (skip-gram pairs with the corpus line they come from).

    Args:
        dim: vector size ``D`` (>= 2: the sphere ``S^(D-1)``).
        margin: the hinge margin ``m`` (> 0; the JoSE code's default 0.15).
        hinge: ``"joint"`` (the post's loss) or ``"separate"`` (the JoSE code's two hinges; see
            :func:`spherical_hinge_loss`).
        negative: noise words per tuple ``K`` (the JoSE code's default 2).
        ns_exponent: noise distribution ``~ count^ns_exponent``.
        lr: initial Riemannian SGD step (the JoSE code's 0.04).
        min_lr_ratio: final learning rate as a share of ``lr``.
        cosine_scaling: the paper's step scaling by the cosine distance ``1 + x^T g / ||g||`` (False: plain RSGD).
        train_threads: torch intra-op threads while training on the CPU (as word2vec's; ``None``: leave them).
        vocab_size, words, language: see :class:`WordVectorModule` (linked from the data).
        counts: corpus count of each word (linked from ``data.counts``; ``None`` when a checkpoint brings the noise).
        steps_per_epoch: expected batches per epoch (linked from ``data.steps_per_epoch``).
        num_paragraphs: ``S``, rows of the paragraph table (linked from ``data.num_paragraphs``).
    """

    def __init__(
        self,
        dim: int = 100,
        margin: float = 0.15,
        hinge: Literal["joint", "separate"] = "joint",
        negative: int = 2,
        ns_exponent: float = 0.75,
        lr: float = 0.04,
        min_lr_ratio: float = 1e-4,
        cosine_scaling: bool = True,
        train_threads: int | None = 1,
        vocab_size: int | None = None,
        words: Sequence[str] | None = None,
        language: str = "en",
        counts: Sequence[int] | None = None,
        steps_per_epoch: int = 1,
        num_paragraphs: int | None = None,
    ) -> None:
        super().__init__(vocab_size, words, language)
        if dim < 2:
            raise ValueError(f"model.dim must be >= 2 (vectors on the sphere S^(dim-1)), got {dim}")
        if margin <= 0 or lr <= 0 or negative < 1 or (train_threads is not None and train_threads < 1):
            raise ValueError(f"model.margin and model.lr must be > 0, model.negative and model.train_threads >= 1, "
                             f"got {margin}, {lr}, {negative}, {train_threads}")
        if num_paragraphs is None or num_paragraphs < 1:
            raise ValueError(f"model.num_paragraphs must be >= 1 (the task links it from the data), got "
                             f"{num_paragraphs}")
        if counts is not None and len(counts) != vocab_size:
            raise ValueError(f"model.counts holds {len(counts)} counts, model.vocab_size is {vocab_size}")
        self.save_hyperparameters(ignore=["words", "counts"])
        self.word, self.context = unit_rows(vocab_size, dim), unit_rows(vocab_size, dim)  # u, v: (V, D)
        self.paragraph = unit_rows(num_paragraphs, dim)  # d: (S, D)
        self.loss = SphericalHingeLoss(margin, hinge)
        noise = torch.as_tensor(counts if counts is not None else [1] * vocab_size, dtype=torch.float64)
        noise = noise**ns_exponent  # (V,)
        self.register_buffer("noise", (noise / noise.sum()).float())

    def vectors(self) -> Tensor:
        return self.word.weight

    def forward(self, center: Tensor, context: Tensor, paragraph: Tensor) -> Tensor:
        """Per-tuple loss ``(B,)`` of ids ``center``, ``context``, ``paragraph`` ``(B,)``, noise words drawn here."""
        noise = torch.multinomial(self.noise, len(center) * self.hparams.negative, replacement=True)
        noise = noise.view(len(center), -1)  # (B, K)
        return self.loss(self.word(center), self.context(context), self.paragraph(paragraph), self.word(noise))

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        if len(batch) != 3:
            raise UsageError("jose needs batches of (center, context, paragraph): set data.paragraphs true")
        losses = self(*batch).float()  # (B,)
        trainer = self._trainer
        if trainer is None or self.global_step % max(1, trainer.log_every_n_steps) == 0:
            self.log("train/loss", losses.mean(), prog_bar=True)
            self.log("train/active", (losses > 0).float().mean())  # share of tuples inside the margin
        return losses.sum()

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = RiemannianSGD(self.parameters(), lr=hp.lr, cosine_scaling=hp.cosine_scaling)
        total = max(1, hp.steps_per_epoch * max(1, self.trainer.max_epochs or 1))
        decay = lambda step: max(hp.min_lr_ratio, 1.0 - step / total)  # noqa: E731 (linear decay, as JoSE's code)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def report_lines(self, command: str) -> list[str]:
        """The word-vector report (neighbours, ``vectors.txt`` last), with ``paragraph_vectors.txt`` (one row per
        corpus line, keyed by its 0-based line number among the kept lines) exported beside it."""
        lines = super().report_lines(command)
        if lines:
            path = Path(self.trainer.default_root_dir) / "paragraph_vectors.txt"
            ids = [str(i) for i in range(self.hparams.num_paragraphs)]
            save_word2vec_format(path, ids, self.paragraph.weight.detach().float().cpu())
            lines.insert(-1, f"paragraph vectors: {path.resolve()}")
        return lines
