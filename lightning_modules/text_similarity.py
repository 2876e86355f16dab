"""Unsupervised text similarity: WMD, WRD and the cosine of mean vectors, scored against human ratings.

Post: 从EMD、WMD到WRD:文本向量序列的相似度计算 (https://kexue.fm/archives/7388). Nothing is trained: ``fit``
is a no-op (``max_epochs: 0``), ``test`` embeds both texts of every pair, computes the three similarities
and logs their Pearson and Spearman correlations with the human scores. The token vectors are a component
(``--model.vectors LeeSvdVectors|Word2VecVectors|MiniLMVectors``).
"""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.distances import cosine_of_means, word_mover_distance_batch, word_rotator_distance_batch
from kexue.errors import UsageError
from kexue.metrics import SimilarityCorrelation
from kexue.models.token_vectors import Bag, LeeSvdVectors, MiniLMVectors, TokenVectors, Word2VecVectors
from kexue.nn.components import build_component, component_config

__all__ = ["LeeSvdVectors", "MiniLMVectors", "TextSimilarity", "TokenVectors", "Word2VecVectors"]  # CLI short names

Batch = dict[str, Tensor | list[str]]  # see kexue.datamodules.text_similarity.TextPairDataModule
MEASURES = ("wmd", "wrd", "cos")


class TextSimilarity(L.LightningModule):
    """Scores text pairs by ``-WMD``, ``1 - WRD`` and the cosine of mean vectors; logs their correlations.

    Batches are dicts: ``texts_a``, ``texts_b`` (lists of ``B`` strings), ``scores`` ``(B,)`` human scores and
    ``index`` ``(B,)`` the pairs' positions (a pair repeated by DDP padding counts once). Logged per measure
    ``m`` in ``wmd, wrd, cos``: ``{stage}/{m}_pearson`` and ``{stage}/{m}_spearman``.

    Args:
        vectors: the token vectors (:mod:`kexue.models.token_vectors`): :class:`LeeSvdVectors`, fitted on the fly,
            the default; :class:`Word2VecVectors` of a file; :class:`MiniLMVectors`, needs ``kexue[bert]``.
        stopwords: drop gensim's English stopwords before comparing (measured better, BENCHMARKS.md).
        reg: 0 = exact EMD; ``> 0`` = Sinkhorn with this entropic regularisation.
        workers: threads of the batched solver (``None`` = CPU count, 1 = none).
    """

    requires_checkpoint = False  # nothing is fitted: test/predict need no --ckpt_path

    def __init__(
        self,
        vectors: TokenVectors = lazy_instance(LeeSvdVectors, dim=100),  # noqa: B008  (fitted in setup, not here)
        stopwords: bool = True,
        reg: float = 0.0,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        if reg < 0:
            raise ValueError(f"model.reg must be non-negative, got {reg}")
        vectors = component_config(vectors)  # before save_hyperparameters: the default is one shared object
        self.save_hyperparameters()
        self.vectors, self.loaded = build_component(vectors), False
        self.stop: frozenset[str] = frozenset()
        self._seen: dict[tuple[str, str], list[float]] = {}  # val and test score the same pairs: solve once
        self._bags: dict[str, Bag] = {}
        self.metrics = nn.ModuleDict({f"{s}_{m}": SimilarityCorrelation() for s in ("val", "test") for m in MEASURES})

    def setup(self, stage: str) -> None:
        if not self.loaded:
            self.vectors.load()
            if self.hparams.stopwords:
                from gensim.parsing.preprocessing import STOPWORDS

                self.stop = frozenset(STOPWORDS)
            self.loaded = True

    def _bag(self, text: str) -> Bag:
        bag = self._bags.get(text)
        if bag is None:  # a text is in many pairs (each Lee document in 49): embed it once
            bag = self._bags[text] = self.vectors.bag(text, self.stop)
        if len(bag[0]) == 0:
            raise UsageError(f"no word of this text has a vector (stopwords and unknown words dropped): {text[:60]!r}")
        return bag

    def forward(self, texts_a: list[str], texts_b: list[str]) -> Tensor:
        """``(B, 3)`` similarities of each pair: ``[-WMD, 1 - WRD, cos(mean a, mean b)]``."""
        bags_a, bags_b = [self._bag(t) for t in texts_a], [self._bag(t) for t in texts_b]
        hp = self.hparams
        (xa, wa), (xb, wb) = zip(*bags_a), zip(*bags_b)
        wmd = word_mover_distance_batch(xa, xb, wa, wb, reg=hp.reg, workers=hp.workers)  # (B,)
        # A word seen c times = its vector scaled by c: same direction, c times the norm, i.e. c times the mass.
        sa, sb = [x * w[:, None] for x, w in bags_a], [x * w[:, None] for x, w in bags_b]
        wrd = word_rotator_distance_batch(sa, sb, reg=hp.reg, workers=hp.workers)  # (B,)
        cos = cosine_of_means(sa, sb)  # (B,); the mean scaling cancels in the cosine
        return torch.stack([-wmd, 1 - wrd, cos], dim=1)  # (B, 3)

    def _evaluate(self, batch: Batch, stage: str) -> None:
        keys = list(zip(batch["texts_a"], batch["texts_b"]))
        new = [k for k in dict.fromkeys(keys) if k not in self._seen]
        if new:
            self._seen.update(zip(new, self(*map(list, zip(*new))).tolist()))
        sims = torch.tensor([self._seen[k] for k in keys], dtype=torch.float64)  # (B, 3)
        for k, m in enumerate(MEASURES):
            self.metrics[f"{stage}_{m}"].update(sims[:, k], batch["scores"], batch["index"])

    def _log_epoch(self, stage: str) -> None:
        for m in MEASURES:
            pearson, spearman = self.metrics[f"{stage}_{m}"].compute().tolist()
            self.metrics[f"{stage}_{m}"].reset()
            self.log_dict({f"{stage}/{m}_pearson": pearson, f"{stage}/{m}_spearman": spearman})

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        return None  # nothing to train: the distances are parameter-free

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """One ``-WMD<TAB>1-WRD<TAB>cosine`` line per pair (``kexue predict`` prints them)."""
        return ["\t".join(f"{v:.4f}" for v in row) for row in self(batch["texts_a"], batch["texts_b"]).tolist()]

    def configure_optimizers(self) -> None:
        return None

    def report_lines(self, command: str) -> list[str]:
        return [f"vectors: {self.vectors.name}"] if self.loaded else []
