"""Word-vector LightningModules: word2vec with negative sampling, PPMI + truncated SVD, simpler GloVe.

Posts: “噪声对比估计”杂谈 (https://kexue.fm/archives/5617) for the negative-sampling loss (the losses themselves
live in :mod:`kexue.losses`); SVD分解(三):
连Word2Vec都只不过是个SVD? (https://kexue.fm/archives/4208) for PPMI + SVD; 更别致的词向量模型(四)/(六)
(https://kexue.fm/archives/4675, /4677) for simpler GloVe.

All three share :class:`WordVectorModule`: the vocabulary comes from the datamodule at ``setup`` (so
the tables are sized before a checkpoint is restored into them), validation logs wordsim353 Spearman,
test logs wordsim353 / simlex999 Spearman and analogy accuracy, and ``report_lines`` exports the vectors
in word2vec text format (``vectors.txt`` in the run directory) and prints its path last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from kexue.data.packages import gensim_test_file
from kexue.losses import (  # noqa: F401  (negative_sampling_loss: re-exported from its old home)
    cbow_negative_sampling,
    glove_weight,
    negative_sampling_loss,
    simpler_glove_loss,
    skipgram_negative_sampling,
)
from kexue.text.corpus import ppmi
from kexue.text.vectors import (
    analogy_accuracy,
    nearest_neighbours,
    read_analogies,
    read_word_pairs,
    save_word2vec_format,
    word_similarity,
)

PROBES = {
    "en": ["king", "france", "computer", "war", "music", "science"],
    "zh": ["中国", "经济", "北京", "电脑", "酒店", "服务"],
}


class WordVectorModule(L.LightningModule):
    """Shared vocabulary plumbing, evaluation and export; subclasses implement :meth:`build` and
    :meth:`vectors` (the ``(V, D)`` table that is evaluated and exported)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.language = "en"
        self._vectors_path: Path | None = None

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        dm.load()
        if not self.words:
            self.words, self.language = list(dm.vocab.words), dm.language
            self.build(dm)

    def build(self, dm: L.LightningDataModule) -> None:
        raise NotImplementedError

    def vectors(self) -> Tensor:
        raise NotImplementedError

    def _evaluate(self, stage: str) -> None:
        vectors = self.vectors().detach().float().cpu()
        files = (
            {"wordsim353": "wordsim353.tsv"}
            if stage == "val"
            else {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
        )
        for name, file in files.items():
            rho, _ = word_similarity(vectors, self.words, read_word_pairs(gensim_test_file(file)))
            self.log(f"{stage}/{name}", rho)
        if stage == "test":
            acc, _ = analogy_accuracy(vectors, self.words, read_analogies(gensim_test_file("questions-words.txt")))
            self.log("test/analogy", acc)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate("val")

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate("test")

    def report_lines(self, command: str) -> list[str]:
        """Nearest neighbours of a few probe words, then the path of the exported ``vectors.txt``."""
        if command not in ("fit", "run", "test") or not self.words:
            return []
        trainer = self.trainer
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = save_word2vec_format(run_dir / "vectors.txt", self.words, self.vectors())
        vectors, lines = self.vectors().detach().float().cpu(), []
        for word in PROBES[self.language]:
            if word in self.words:
                near = nearest_neighbours(vectors, self.words, word, k=8)
                lines.append(f"nearest {word}: " + " ".join(w for w, _ in near))
        return [*lines, str(path.resolve())]


class Word2Vec(WordVectorModule):
    """Skip-gram or CBOW with negative sampling, on sparse embeddings updated by plain SGD.

    Batches: skip-gram ``(target (B,), context (B,))``; CBOW ``(target (B,), contexts (B, 2W))`` with -1
    padding (the input is the mean of the context vectors). The loss is summed over the batch, so
    ``lr`` means what word2vec's ``alpha`` means (a step per pair), decayed linearly to ``lr * min_lr_ratio``.

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
    ) -> None:
        super().__init__()
        if dim < 1 or negative < 1 or lr <= 0 or share_noise < 1 or (train_threads is not None and train_threads < 1):
            raise ValueError(
                f"model.dim, model.negative, model.share_noise and model.train_threads must be >= 1 and "
                f"model.lr > 0, got {dim}, {negative}, {share_noise}, {train_threads}, {lr}"
            )
        self.save_hyperparameters()

    def on_train_start(self) -> None:
        self._threads = torch.get_num_threads()
        if self.hparams.train_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.hparams.train_threads)

    def on_train_end(self) -> None:
        torch.set_num_threads(getattr(self, "_threads", torch.get_num_threads()))

    def build(self, dm: L.LightningDataModule) -> None:
        vocab_size, dim = len(self.words), self.hparams.dim
        self.inp = nn.Embedding(vocab_size, dim, sparse=True)
        self.out = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)  # word2vec's init: small inputs, zero outputs
        nn.init.zeros_(self.out.weight)
        noise = torch.as_tensor(dm.vocab.counts, dtype=torch.float64) ** self.hparams.ns_exponent
        self.register_buffer("noise", (noise / noise.sum()).float(), persistent=False)
        self._steps_per_epoch = dm.expected_batches() if hasattr(dm, "expected_batches") else 1

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
        max_epochs = max(1, self.trainer.max_epochs or 1)
        total = max(1, self._steps_per_epoch * max_epochs)
        decay = lambda step: max(hp.min_lr_ratio, 1.0 - step / total)  # noqa: E731 (word2vec's linear decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class SVDVectors(WordVectorModule):
    """PPMI matrix + truncated SVD, no training loop (SVD分解(三), https://kexue.fm/archives/4208).

    The one training step factorises the datamodule's co-occurrence matrix: ``PPMI = U S V^T`` (rank
    ``dim``, randomized ``torch.svd_lowrank`` on the sparse matrix), vectors ``U S^eig_power``. It runs as a
    Lightning step (manual optimisation, no optimizer) so checkpointing, the test loop and the CLI work
    as for the trained models; ``max_epochs: 1`` and a one-item train loader make it a single step.

    Args:
        dim: vector size (SVD rank).
        shift: PMI shift ``log k`` (``k = 5`` is the SPPMI that SGNS with 5 negatives factorises).
        alpha: context-distribution smoothing (0.75, as word2vec's noise distribution).
        eig_power: exponent of the singular values in the vectors (0.5 symmetric, 1 = ``U S``).
        niter: subspace iterations of the randomized SVD.
    """

    def __init__(
        self, dim: int = 100, shift: float = 1.0, alpha: float = 0.75, eig_power: float = 0.5, niter: int = 4
    ) -> None:
        super().__init__()
        if dim < 1 or shift <= 0:
            raise ValueError(f"model.dim must be >= 1 and model.shift > 0, got {dim}, {shift}")
        self.save_hyperparameters()
        self.automatic_optimization = False

    def build(self, dm: L.LightningDataModule) -> None:
        dim = min(self.hparams.dim, len(self.words))
        self.register_buffer("embeddings", torch.zeros(len(self.words), dim))

    def vectors(self) -> Tensor:
        return self.embeddings

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        hp = self.hparams
        matrix = ppmi(self.trainer.datamodule.cooc, shift=hp.shift, alpha=hp.alpha).tocoo()
        indices = torch.as_tensor(np.vstack([matrix.row, matrix.col]), dtype=torch.long)  # (2, nnz)
        sparse = torch.sparse_coo_tensor(indices, torch.as_tensor(matrix.data, dtype=torch.float32), matrix.shape)
        k = self.embeddings.shape[1]
        u, s, _ = torch.svd_lowrank(sparse, q=min(k + 10, min(matrix.shape)), niter=hp.niter)  # (V, q), (q,)
        self.embeddings.copy_(u[:, :k] * s[:k] ** hp.eig_power)  # (V, k)
        self.log("train/ppmi_nnz", float(matrix.nnz))

    def configure_optimizers(self) -> None:
        return None


class SimplerGloVe(WordVectorModule):
    """Simpler GloVe: one set of vectors, no biases, fitted to the log PMI of the co-occurrence matrix.

    Loss per non-zero entry (更别致的词向量模型(四), https://kexue.fm/archives/4675):
    ``w(x_ij) (<v_i, v_j> - log(P(i,j) / (P(i) P(j))))^2`` with ``P(i,j) = x_ij / sum(x)``, ``P(i)`` the
    row marginal, and ``w(x) = (x / x_max)^alpha`` (capped at 1 with ``cap_weight``). Summed over the batch
    and minimised by Adagrad on sparse gradients (GloVe's optimiser).

    Args:
        dim: vector size.
        x_max: weighting scale.
        alpha: weighting exponent.
        cap_weight: cap the weight at 1 (as GloVe); without, frequent pairs keep growing in weight.
        lr: Adagrad learning rate.
    """

    def __init__(
        self, dim: int = 100, x_max: float = 100.0, alpha: float = 0.75, cap_weight: bool = True, lr: float = 0.05
    ) -> None:
        super().__init__()
        if dim < 1 or x_max <= 0 or lr <= 0:
            raise ValueError(f"model.dim must be >= 1, model.x_max and model.lr > 0, got {dim}, {x_max}, {lr}")
        self.save_hyperparameters()

    def build(self, dm: L.LightningDataModule) -> None:
        dim = self.hparams.dim
        self.emb = nn.Embedding(len(self.words), dim, sparse=True)
        nn.init.uniform_(self.emb.weight, -0.5 / dim, 0.5 / dim)
        cooc = dm.cooc
        total = float(cooc.sum())
        marginal = torch.as_tensor(np.asarray(cooc.sum(axis=1)).ravel() / total, dtype=torch.float32)  # (V,)
        self.register_buffer("log_marginal", marginal.clamp_min(1e-30).log(), persistent=False)
        self.log_total = float(np.log(total))

    def vectors(self) -> Tensor:
        return self.emb.weight

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        i, j, x = batch  # (B,), (B,), (B,)
        hp = self.hparams
        log_pmi = x.log() - self.log_total - self.log_marginal[i] - self.log_marginal[j]  # log P(i,j)/(P(i)P(j))
        losses = simpler_glove_loss(
            self.emb(i), self.emb(j), log_pmi, glove_weight(x, hp.x_max, hp.alpha, hp.cap_weight)
        )
        self.log("train/loss", losses.mean(), prog_bar=True)
        return losses.sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(self.parameters(), lr=self.hparams.lr)
