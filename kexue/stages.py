"""Stage mixins shared by several LightningModules: the validation / test hooks of a task scored by span or triple
F1 (:class:`CountF1Stages`: cws, ner, relation_extraction) and the steps of a next-token language model
(:class:`NextTokenStages`: language_model, cond_lm).

A mixin here holds the hooks only; the LightningModule that uses it owns its metrics and its network.
Posts: 简明条件随机场CRF介绍 (https://kexue.fm/archives/5542); 从语言模型到Seq2Seq (https://kexue.fm/archives/6933).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from kexue.metrics import log_span_f1

Batch = dict[str, Tensor]


class CountF1Stages:
    """The validation / test hooks of a LightningModule scored by two :class:`~kexue.metrics.CountF1` metrics,
    ``val_f1`` and ``test_f1``, that its ``_evaluate(batch, stage, metric)`` updates (shared by
    :class:`SequenceLabeler` and the relation extractor); precision, recall and F1 are logged at each epoch's end."""

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_f1)

    def on_validation_epoch_end(self) -> None:
        log_span_f1(self, self.val_f1, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_f1)

    def on_test_epoch_end(self) -> None:
        log_span_f1(self, self.test_f1, "test")


class NextTokenStages:
    """The training / validation / test steps of a next-token language model (shared by :class:`LanguageModel` and
    the conditional LM of task ``cond_lm``): the subclass gives ``_logits_targets(batch)`` -> logits ``(B, T-1, V)``
    and targets ``(B, T-1)`` (``-100`` where there is no next token) and two torchmetrics ``Perplexity``,
    ``val_ppl`` and ``test_ppl``; :meth:`write_samples` sends generated text to ``<run>/samples.txt`` and W&B."""

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits, targets = self._logits_targets(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(targets))
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        logits, targets = self._logits_targets(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        metric = self.val_ppl if stage == "val" else self.test_ppl
        metric.update(logits.float(), targets)
        self.log(f"{stage}/loss", loss, batch_size=len(targets), sync_dist=True)
        self.log(f"{stage}/ppl", metric, prog_bar=stage == "val", batch_size=len(targets))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def write_samples(self, rows: list[list], columns: list[str]) -> None:
        """Append ``rows`` (``columns``: epoch first, the sample last) to ``<run>/samples.txt`` and log them to the
        loggers that take text (W&B: a table)."""
        root = Path(self.trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "samples.txt", "a", encoding="utf-8") as f:
            f.writelines(f"epoch {row[0]}\t" + "\t".join(str(c) for c in row[1:]) + "\n" for row in rows)
        for logger in self.loggers:
            if hasattr(logger, "log_text"):
                logger.log_text(key="samples", columns=columns, data=rows)



__all__ = ["CountF1Stages", "NextTokenStages"]
