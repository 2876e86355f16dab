"""Task ``word_discovery``: a lexicon found in raw text without supervision, then segmentation with it.

No gradients: the "training" epoch streams the raw corpus through ``training_step`` (each batch is
kept), and at the epoch's end :func:`kexue.text.word_discovery.discover_words` builds the lexicon from all of
it. Training batches are raw strings, not tensors: the statistics are over character n-grams of the whole
corpus (counts, cuts, neighbours), computed from the text itself, so there is nothing to featurise ahead.
Validation and test segment gold-segmented sentences by the most probable split over the lexicon and
log word P/R/F1 (the scorer of task ``cws``). The lexicon travels in the checkpoint and is exported as a
jieba user dictionary (``lexicon.txt`` in the run directory). Without a lexicon (``--untrained``) every
character is a word.

Posts: 最小熵原理(二):“当机立断”之词库构建 (https://kexue.fm/archives/5476), 基于最小熵原理的NLP库:
nlp zero (https://kexue.fm/archives/5597), 新词发现的信息熵方法与实现 (https://kexue.fm/archives/3491).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor

from kexue.metrics import SpanF1, log_span_f1
from kexue.text import bmes_tags
from kexue.text.word_discovery import WordDiscoveryConfig, discover_words, export_lexicon, segment, top_words

Batch = dict[str, Any]  # {"texts": list[str], "tags": (B, T), "index": (B,)}; predict: no "tags"


class WordDiscoverer(L.LightningModule):
    """Builds a lexicon from the raw lines of the training epoch; segments ``{"texts", "tags" (B, T)}`` batches.

    Args:
        tags: B/M/E/S tag names in id order (linked from the datamodule), to score against the gold tags.
        max_n: longest n-gram whose cohesion is judged.
        min_count: least count of a cohesive n-gram and of a lexicon word.
        threshold: cohesion bar per extra character, nats (``log 5`` = the post's 5/25/125 ratios).
        cohesion: ``"pmi"`` or ``"entropy"`` (code-length saving per occurrence, the minimum-entropy form).
        min_entropy: least left and right neighbour entropy of a word (nats); 0 = no boundary test.
        top_k: how many of the most frequent discovered words ``kexue run`` prints.
    """

    def __init__(
        self,
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        max_n: int = 4,
        min_count: int = 4,
        threshold: float = 2.0,
        cohesion: Literal["pmi", "entropy"] = "pmi",
        min_entropy: float = 0.0,
        top_k: int = 30,
    ) -> None:
        super().__init__()
        if max_n < 2:
            raise ValueError(f"model.max_n must be >= 2 (words have two or more characters), got {max_n}")
        if min_count < 1:
            raise ValueError(f"model.min_count must be >= 1, got {min_count}")
        if cohesion not in ("pmi", "entropy"):
            raise ValueError(f"model.cohesion must be 'pmi' or 'entropy', got {cohesion!r}")
        if missing := {"B", "M", "E", "S"} - set(tags):
            raise ValueError(f"word_discovery scores B/M/E/S tags; model.tags lacks {sorted(missing)}")
        self.save_hyperparameters()
        self.config = WordDiscoveryConfig(max_n, min_count, threshold, cohesion, min_entropy)
        self.tag_ids = {t: i for i, t in enumerate(tags)}
        self.lexicon: dict[str, int] = {}
        self.lexicon_path: Path | None = None
        self._corpus: list[str] = []
        self._built_from = 0
        self.val_f1 = SpanF1(tags)
        self.test_f1 = SpanF1(tags)

    # -- the lexicon -------------------------------------------------------------------------------

    def fit_lexicon(self, texts: list[str]) -> None:
        """Build the lexicon from raw ``texts``."""
        self.set_lexicon(discover_words(texts, self.config))

    def set_lexicon(self, lexicon: Mapping[str, int]) -> None:
        """Use ``lexicon`` (word -> count; empty: every character a word), caching what :meth:`segment` needs."""
        self.lexicon = dict(lexicon)
        self._total = sum(self.lexicon.values())
        self._max_len = max(map(len, self.lexicon), default=1)

    def segment(self, text: str) -> list[str]:
        """Words of ``text``: the most probable split under the lexicon's unigram model."""
        if not self.lexicon:
            return list(text)
        return segment(text, self.lexicon, self._total, self._max_len)

    def on_train_epoch_start(self) -> None:
        self._corpus, self._built_from = [], 0

    def training_step(self, batch: list[str], batch_idx: int) -> None:
        self._corpus.extend(batch)  # nothing to optimise: the epoch only gathers the raw text

    def _build_lexicon(self) -> None:
        """The lexicon of the lines gathered so far this epoch, all ranks' together (unless already built)."""
        if len(self._corpus) == self._built_from:
            return
        corpus, self._built_from = self._corpus, len(self._corpus)
        if dist.is_available() and dist.is_initialized() and self.trainer.world_size > 1:
            shards: list[list[str]] = [[] for _ in range(self.trainer.world_size)]
            dist.all_gather_object(shards, corpus)  # every rank builds the same lexicon from all lines
            corpus = [t for shard in shards for t in shard]
        self.fit_lexicon(corpus)
        if self.trainer.is_global_zero:
            root = self.trainer.default_root_dir  # not log_dir: it broadcasts, and only rank 0 is here
            self.lexicon_path = export_lexicon(self.lexicon, Path(root) / "lexicon.txt")

    def on_validation_epoch_start(self) -> None:
        # Lightning validates at the end of a training epoch *before* on_train_epoch_end: build the lexicon
        # here, so validation and the checkpoint saved after it see the lexicon of the lines read so far.
        if self._corpus:
            self._build_lexicon()

    def on_train_epoch_end(self) -> None:
        self._build_lexicon()
        self._corpus, self._built_from = [], 0
        self.log("train/words", float(sum(len(w) > 1 for w in self.lexicon)), rank_zero_only=True)

    def configure_optimizers(self) -> None:
        return None  # statistics, not parameters

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lexicon"] = self.lexicon

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "lexicon" not in checkpoint:
            raise ValueError("the checkpoint holds no lexicon (not written by word_discovery): retrain")
        self.set_lexicon(checkpoint["lexicon"])  # empty when saved before the first epoch's end

    # -- scoring -----------------------------------------------------------------------------------

    def _tag_ids(self, texts: list[str], width: int) -> Tensor:
        """B/M/E/S ids ``(B, width)`` of the segmentation of ``texts``, ``-1`` past each text's end."""
        out = torch.full((len(texts), width), -1, dtype=torch.long)  # (B, T)
        for i, text in enumerate(texts):
            ids = [self.tag_ids[t] for t in bmes_tags(self.segment(text))]
            out[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        return out

    def _evaluate(self, batch: Batch, metric: SpanF1) -> None:
        tags = batch["tags"].cpu()  # (B, T)
        index = batch.get("index")
        metric.update(self._tag_ids(batch["texts"], tags.shape[1]), tags, None if index is None else index.cpu())

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_f1)

    def on_validation_epoch_end(self) -> None:
        log_span_f1(self, self.val_f1, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_f1)

    def on_test_epoch_end(self) -> None:
        log_span_f1(self, self.test_f1, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """One line per text: its words separated by spaces."""
        return [" ".join(self.segment(text)) for text in batch["texts"]]

    def report_lines(self, command: str) -> list[str]:
        """After ``kexue run|fit``: the most frequent discovered words, then the exported lexicon's path."""
        if command not in ("run", "fit") or not self.lexicon:
            return []
        words = sum(len(w) > 1 for w in self.lexicon)
        top = " ".join(f"{w}({c})" for w, c in top_words(self.lexicon, self.hparams.top_k))
        lines = [f"discovered {words} words of 2+ characters; top {self.hparams.top_k}: {top}"]
        return lines + ([f"lexicon: {self.lexicon_path}"] if self.lexicon_path else [])
