"""Task ``pretrain``: a small Chinese BERT trained from scratch with the masked-language-model objective; when fit
ends it is written as a Hugging Face BERT folder ``<run>/bert/`` (``config.json``, ``model.safetensors``,
``vocab.txt``, tokenizer files) that ``transformers``' ``BertForMaskedLM`` and :meth:`kexue.models.bert.Bert.
from_pretrained` load, and every downstream task takes as an encoder component (:class:`kexue.models.BertTextEncoder`,
:class:`kexue.models.BertCharEncoder`).

Posts: 自己实现了一个bert4keras (https://kexue.fm/archives/6915) and its pretraining scripts: BERT's MLM head tied to
the word embeddings, AdamW without weight decay on biases and LayerNorm, linear warm-up then linear decay.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric

from kexue.errors import UsageError
from kexue.metrics.missing import log_score
from kexue.models.bert import BertFromConfig
from kexue.models.sizes import check_vocabulary
from kexue.models.tokenizers import BERT_SPECIALS, wordpiece_tokenizer
from kexue.nn.components import build_component, component_config
from kexue.optim import no_weight_decay_groups, warmup_linear_decay
from kexue.text.vocabulary import check_pieces


class MaskedLMPretrainer(L.LightningModule):
    """Masked-token cross-entropy on ``{"ids", "padding", "labels"}`` batches (``(B, T)`` each, labels ``-100`` where
    nothing is predicted). Logs ``train/loss`` and, for val and test, ``loss`` (mean over masked tokens), ``mlm_acc``
    (argmax = original token) and ``ppl`` (``exp`` of that loss). ``predict`` fills in the ``[MASK]`` of each line.

    Args:
        bert: the network, a :class:`kexue.models.bert.Bert` with its MLM head: by default
            :class:`~kexue.models.BertFromConfig` (4 x 256, ``--model.bert.dim 512`` ...; BERT's layout: post-LN,
            learned positions, embedding LayerNorm). Its ``vocab_size`` (``data.vocab_size``, checked against
            ``vocabulary``) and ``max_length`` are linked from the data.
        vocabulary: the pieces in id order (linked from the data): written as ``bert/vocab.txt``, and kept so that
            ``predict`` turns ids back into text from the checkpoint alone.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay (not on biases and LayerNorm gains).
        warmup: fraction of the training steps over which the learning rate rises linearly from 0; it then falls
            linearly to 0 at the last step (``trainer.max_steps`` or ``max_epochs``;
            :func:`kexue.optim.warmup_linear_decay`).
        export: write ``<run>/bert/`` when fit ends.
    """

    runtime_arguments: ClassVar[tuple[str, ...]] = ("export",)

    def __init__(
        self,
        bert: nn.Module = lazy_instance(BertFromConfig),  # noqa: B008 (shown as class_path/init_args)
        vocabulary: list | None = None,  # a bare list: see kexue.text.vocabulary.check_pieces
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup: float = 0.05,
        export: bool = True,
    ) -> None:
        super().__init__()
        vocabulary = check_pieces(vocabulary, "model.vocabulary")
        if not vocabulary or len(vocabulary) < 6:
            raise UsageError("model.vocabulary is not set: it is linked from the data's WordPiece vocabulary")
        if lr <= 0 or weight_decay < 0 or not 0 <= warmup < 1:
            raise ValueError(f"need model.lr > 0, model.weight_decay >= 0, 0 <= model.warmup < 1, got {lr}, "
                             f"{weight_decay}, {warmup}")
        bert = component_config(bert)  # before save_hyperparameters: see component_config
        self.save_hyperparameters()
        self.net = build_component(bert)
        check_vocabulary(self.net.vocab_size, len(vocabulary), "model.bert")
        self.metrics = torch.nn.ModuleDict({f"{stage}_{name}": MeanMetric() for stage in ("val", "test")
                                            for name in ("loss", "acc")})
        self.exported: Path | None = None

    def forward(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """MLM logits ``(B, T, V)`` of ``ids`` ``(B, T)``."""
        return self.net.mlm_logits(self.net(ids, padding=padding))

    def _masked(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Logits ``(N, V)`` and targets ``(N,)`` of the ``N`` masked tokens of the batch (the head runs on them
        alone: a ``V``-wide product at every position would cost more than the whole encoder)."""
        hidden = self.net(batch["ids"], padding=batch["padding"])  # (B, T, D)
        chosen = batch["labels"] != -100  # (B, T)
        return self.net.mlm_logits(hidden[chosen]).float(), batch["labels"][chosen]  # (N, V), (N,)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits, targets = self._masked(batch)
        loss = F.cross_entropy(logits, targets, reduction="sum") / max(1, len(targets))  # 0 with nothing masked
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        logits, targets = self._masked(batch)
        if len(targets):
            self.metrics[f"{stage}_loss"].update(F.cross_entropy(logits, targets, reduction="none"))
            self.metrics[f"{stage}_acc"].update((logits.argmax(-1) == targets).float())

    def _log_epoch(self, stage: str) -> None:
        loss, acc = self.metrics[f"{stage}_loss"], self.metrics[f"{stage}_acc"]
        # Nothing masked at all (an empty split is refused earlier): no figure. NaN keeps a val/loss monitor
        # working, and the CLI prints why (kexue.metrics.missing).
        values = {"loss": math.nan, "mlm_acc": math.nan, "ppl": math.nan}
        if loss.update_count:
            mean = loss.compute()  # per masked token, over every process
            values = {"loss": mean, "mlm_acc": acc.compute(), "ppl": mean.exp()}
        for name, value in values.items():
            log_score(self, f"{stage}/{name}", value, int(loss.update_count),
                      f"no token of the {stage} split was masked (too few tokens)", prog_bar=stage == "val")
        loss.reset()
        acc.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        """Each line with every ``[MASK]`` replaced by the most likely piece that is not a special token (``##``
        dropped); lines without one come back as they are."""
        pieces = self.hparams.vocabulary
        mask_id = pieces.index("[MASK]")
        logits = self(batch["ids"], batch["padding"])  # (B, T, V)
        specials = [pieces.index(t) for t in BERT_SPECIALS if t in pieces]
        logits[..., specials] = float("-inf")  # a blank is filled with text, never with [SEP] / [PAD] / [UNK]
        best = logits.argmax(-1)  # (B, T)
        lines = []
        for text, ids, guess in zip(batch["texts"], batch["ids"].tolist(), best.tolist()):
            fills = iter([pieces[g].removeprefix("##") for i, g in zip(ids, guess) if i == mask_id])
            parts = text.split("[MASK]")
            lines.append(parts[0] + "".join(next(fills, "[MASK]") + part for part in parts[1:]))
        return lines

    def export(self, path: str | Path) -> Path:
        """Write the network and its WordPiece tokenizer as a Hugging Face BERT folder at ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "vocab.txt").write_text("".join(f"{p}\n" for p in self.hparams.vocabulary), encoding="utf-8")
        self.net.save_pretrained(path, wordpiece_tokenizer(path / "vocab.txt"))  # rewrites vocab.txt, adds the rest
        return path

    def on_fit_end(self) -> None:
        if self.hparams.export and self.trainer.is_global_zero:
            self.exported = self.export(Path(self.trainer.default_root_dir) / "bert")
            rank_zero_info(f"BERT folder written to {self.exported}")

    def report_lines(self, command: str) -> list[str]:
        """The path of the exported BERT folder after ``fit`` / ``run``."""
        return [f"bert: {self.exported.resolve()}"] if self.exported is not None else []

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        groups = no_weight_decay_groups(self.named_parameters(), hp.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=hp.lr)
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("the pretrain task's learning-rate decay needs trainer.max_steps or trainer.max_epochs")
        total = max(1, int(total))
        scheduler = warmup_linear_decay(optimizer, max(1, math.ceil(hp.warmup * total)), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["MaskedLMPretrainer"]
