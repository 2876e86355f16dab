"""Character sequence labelling (tasks ``cws`` and ``ner``): hashed char/bigram embeddings, a BiLSTM or
CNN, per-character emissions, then a CRF, MEMM or per-character softmax head.

Posts: 简明条件随机场CRF介绍 (https://kexue.fm/archives/5542) for the CRF head and the constrained Viterbi
decoding; CRF用过了,不妨再了解下更快的MEMM? (https://kexue.fm/archives/7213) for the MEMM head.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.metrics import SpanF1, bio_spans, bmes_spans
from kexue.nn import (
    CharTokenEncoder,
    ConditionalRandomField,
    MaximumEntropyMarkovModel,
    bio_constraints,
    bmes_constraints,
)
from kexue.text import char_features, pad_sequences

Batch = tuple[list[str], Tensor]


class SequenceLabeler(L.LightningModule):
    """Tag each character of raw strings; batches are ``(texts: list[str], tags: (B, T))``, ``-1`` = padding.

    Args:
        tags: tag names in id order (linked from the datamodule). ``B/M/E/S`` tags are scored as words
            (SIGHAN), ``B-X/I-X/O`` as entities; both decode under their allowed transitions.
        head: ``"crf"`` (global normalisation, 5542), ``"memm"`` (per-step normalisation, 7213) or
            ``"softmax"`` (independent per-character classes, argmax decoding).
        encoder: ``"lstm"`` (bidirectional) or ``"cnn"``.
        bigrams: add the hashed char bigrams around each character to its features.
        num_buckets: hash buckets (embedding rows).
        embed_dim: size of each feature embedding.
        hidden_dim: encoder size (per direction for the LSTM).
        num_layers: CNN layers.
        kernel_size: CNN width.
        dropout: encoder dropout.
        constrained: decode crf/memm paths under ``bmes_constraints`` / ``bio_constraints``.
        transition_lr_multiplier: CRF transitions train at ``lr *`` this (via ``param_groups``).
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the optimizer; its groups are kept).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        head: Literal["crf", "memm", "softmax"] = "crf",
        encoder: Literal["lstm", "cnn"] = "cnn",
        bigrams: bool = True,
        num_buckets: int = 2**16,
        embed_dim: int = 32,
        hidden_dim: int = 128,
        num_layers: int = 2,
        kernel_size: int = 3,
        dropout: float = 0.2,
        constrained: bool = True,
        transition_lr_multiplier: float = 1.0,
        lr: float = 5e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        K = len(tags)
        bio = any(t.startswith("I-") for t in tags)
        self.encoder = CharTokenEncoder(num_buckets, 3 if bigrams else 1, embed_dim, hidden_dim, encoder,
                                        kernel_size, num_layers, dropout)
        self.emissions = nn.Linear(self.encoder.output_dim, K)
        if head == "crf":
            self.chain: nn.Module | None = ConditionalRandomField(K, transition_lr_multiplier=transition_lr_multiplier)
        elif head == "memm":
            self.chain = MaximumEntropyMarkovModel(K)
        elif head == "softmax":
            self.chain = None
        else:
            raise ValueError(f"unknown head {head!r}: expected 'crf', 'memm' or 'softmax'")
        self.constraints = (bio_constraints if bio else bmes_constraints)(tags) if constrained else None
        self.spans = bio_spans if bio else bmes_spans
        self.words = not bio and all("-" not in t and t != "O" for t in tags)  # plain segmentation tags
        self.val_f1 = SpanF1(tags)
        self.test_f1 = SpanF1(tags)

    def featurize(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Hashed feature ids ``(B, T, G)`` (0 = padding) and the mask ``(B, T)`` of real characters."""
        hp = self.hparams
        feats = [char_features(t, hp.num_buckets, hp.bigrams) for t in texts]
        G = 3 if hp.bigrams else 1
        ids = pad_sequences([[i for row in f for i in row] for f in feats], min_length=G)  # (B, T*G)
        ids = ids[:, : ids.shape[1] // G * G].view(len(texts), -1, G).to(self.device)  # (B, T, G)
        return ids, ids[..., 0] > 0

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Emission scores ``(B, T, K)`` and mask ``(B, T)`` of raw ``texts``."""
        ids, mask = self.featurize(texts)
        return self.emissions(self.encoder(ids, mask)), mask  # (B, T, K), (B, T)

    def loss(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood per character (``token_mean``), the same scale for all three heads."""
        tags = tags[:, : mask.shape[1]]  # (B, T)
        if self.chain is None:
            return F.cross_entropy(emissions[mask], tags[mask])
        return -self.chain(emissions, tags, mask, reduction="token_mean")

    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Best tag ids ``(B, T)``, ``-1`` at padding."""
        if self.chain is None:
            return emissions.argmax(-1).masked_fill(~mask, -1)
        return self.chain.decode(emissions, mask, self.constraints)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        texts, tags = batch
        emissions, mask = self(texts)
        loss = self.loss(emissions, tags, mask)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(texts))
        return loss

    def _evaluate(self, batch: Batch, stage: str) -> None:
        texts, tags = batch
        emissions, mask = self(texts)
        tags = tags[:, : mask.shape[1]]
        self.log(f"{stage}/loss", self.loss(emissions, tags, mask), batch_size=len(texts), sync_dist=True)
        (self.val_f1 if stage == "val" else self.test_f1).update(self.decode(emissions, mask), tags)

    def _log_f1(self, metric: SpanF1, stage: str) -> None:
        p, r, f1 = metric.compute().tolist()  # synced across ranks
        metric.reset()
        self.log_dict({f"{stage}/precision": p, f"{stage}/recall": r, f"{stage}/f1": f1}, prog_bar=stage == "val")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_f1(self.val_f1, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_f1(self.test_f1, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """One line per text: words separated by spaces (B/M/E/S), or the text with ``[entity/LABEL]`` marks."""
        texts, _ = batch
        paths = self.decode(*self(texts)).tolist()  # (B, T)
        out = []
        for text, path in zip(texts, paths):
            spans = sorted(self.spans([self.hparams.tags[i] for i in path[: len(text)]]))
            if self.words:
                out.append(" ".join(text[s:e] for s, e, _ in spans))
            else:
                pieces, pos = [], 0
                for s, e, label in spans:
                    pieces += [text[pos:s], f"[{text[s:e]}/{label}]"]
                    pos = e
                out.append("".join(pieces) + text[pos:])
        return out

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: the CRF's parameters (if any) with ``lr_multiplier`` = its transition multiplier.

        The CLI builds ``--optimizer`` from these and scales that group's learning rate by the multiplier.
        """
        if not isinstance(self.chain, ConditionalRandomField):
            return [{"params": list(self.parameters())}]
        crf_ids = {id(p) for p in self.chain.parameters()}
        rest = [p for p in self.parameters() if id(p) not in crf_ids]
        crf = self.chain.param_groups(1.0)[0]  # {"params": ..., "lr": 1.0 * multiplier}
        return [{"params": rest}, {"params": crf["params"], "lr_multiplier": crf["lr"]}]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        groups = [{**g, "lr": hp.lr * g.get("lr_multiplier", 1.0)} for g in self.parameter_groups()]
        return torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
