"""PPMI + truncated SVD word vectors, no training loop (task ``svd_vectors``).

Post: SVD分解(三): 连Word2Vec都只不过是个SVD? (https://kexue.fm/archives/4208). The co-occurrence matrix
arrives as batches of its non-zero entries (by default all in one batch); the "training" epoch gathers them
and the matrix is factorised with :func:`kexue.text.vectors.svd_word_vectors` when validation starts and at
the epoch's end (whichever comes first; Lightning validates before ``on_train_epoch_end``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import sparse
from torch import Tensor

from kexue.lightning_modules.word_vectors import WordVectorModule
from kexue.text.corpus import ppmi
from kexue.text.vectors import svd_word_vectors


class SVDVectors(WordVectorModule):
    """PPMI matrix + truncated SVD: ``PPMI = U S V^T`` (rank ``dim``), vectors ``U S^eig_power``.

    It runs as Lightning steps (manual optimisation, no optimizer) so checkpointing, the test loop and the
    CLI work as for the trained models. Batches: ``(rows (B,), cols (B,), counts (B,), log_pmi (B,))``
    entries of the ``(V, V)`` co-occurrence matrix (``log_pmi`` unused: the PPMI here has its own shift and
    smoothing); whatever the batch size, the factorisation sees every entry of the epoch.

    Args:
        dim: vector size (SVD rank; at most ``V``).
        shift: PMI shift ``log k`` (``k = 5`` is the SPPMI that SGNS with 5 negatives factorises).
        alpha: context-distribution smoothing (0.75, as word2vec's noise distribution).
        eig_power: exponent of the singular values in the vectors (0.5 symmetric, 1 = ``U S``).
        niter: power iterations of the randomised SVD.
        seed: seed of the randomised SVD's probes.
        vocab_size, words, language: the words that the rows of ``embeddings`` stand for (see
            :class:`WordVectorModule`; linked from the data).
    """

    def __init__(
        self,
        dim: int = 100,
        shift: float = 1.0,
        alpha: float = 0.75,
        eig_power: float = 0.5,
        niter: int = 4,
        seed: int = 0,
        vocab_size: int | None = None,
        words: Sequence[str] | None = None,
        language: str = "en",
    ) -> None:
        super().__init__(vocab_size, words, language)
        if dim < 1 or shift <= 0 or niter < 0:
            raise ValueError(f"model.dim must be >= 1, model.shift > 0, model.niter >= 0, got {dim}, {shift}, {niter}")
        self.save_hyperparameters(ignore=["words"])
        self.automatic_optimization = False
        self.register_buffer("embeddings", torch.zeros(vocab_size, min(dim, vocab_size)))  # (V, k)
        self._entries: list[tuple[Tensor, Tensor, Tensor]] = []
        self._factorised = 0  # how many of the entries' batches the vectors were computed from

    def vectors(self) -> Tensor:
        return self.embeddings

    def on_train_epoch_start(self) -> None:
        self._entries, self._factorised = [], 0

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor, Tensor], batch_idx: int) -> None:
        rows, cols, counts, _ = batch  # (B,) each
        self._entries.append((rows.cpu(), cols.cpu(), counts.cpu()))

    def _factorise(self) -> None:
        """Vectors of the matrix of every entry gathered so far this epoch (unless already factorised)."""
        if len(self._entries) == self._factorised:
            return
        self._factorised = len(self._entries)
        hp, v = self.hparams, self.hparams.vocab_size
        rows, cols, counts = (torch.cat(x).numpy() for x in zip(*self._entries))  # (nnz,) each
        matrix = ppmi(sparse.coo_matrix((counts.astype(np.float64), (rows, cols)), shape=(v, v)).tocsr(),
                      shift=hp.shift, alpha=hp.alpha)  # (V, V)
        vectors = svd_word_vectors(matrix, self.embeddings.shape[1], hp.eig_power, hp.niter, hp.seed)  # (V, k)
        self.embeddings.copy_(torch.from_numpy(vectors))
        self._ppmi_nnz = float(matrix.nnz)

    def on_validation_epoch_start(self) -> None:
        # Lightning validates at the end of a training epoch *before* on_train_epoch_end: factorise here, so
        # validation and the checkpoint saved after it see the vectors.
        if self._entries:
            self._factorise()

    def on_train_epoch_end(self) -> None:
        if self._entries:  # none when the epoch had no batch (e.g. --trainer.limit_train_batches 0)
            self._factorise()
            self.log("train/ppmi_nnz", self._ppmi_nnz)
        self._entries, self._factorised = [], 0

    def configure_optimizers(self) -> None:
        return None
