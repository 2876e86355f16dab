"""Character sequence labelling (tasks ``cws`` and ``ner``): a per-character encoder (a component, picked by
``--model.encoder``), per-character emissions, then a CRF, MEMM or per-character softmax head.

Posts: 简明条件随机场CRF介绍 (https://kexue.fm/archives/5542) for the CRF head and the constrained Viterbi
decoding; CRF用过了,不妨再了解下更快的MEMM? (https://kexue.fm/archives/7213) for the MEMM head;
你的CRF层的学习率可能不够大 (https://kexue.fm/archives/7196) for the transitions' learning-rate multiplier.

The head stays a ``Literal`` and not a component: crf / memm / softmax are the task's alternative training
objectives and decoders (the post compares them on one encoder), each tied to this module's loss, decoding
constraints and optimizer groups, and sized by the tag set this module receives; the network is what varies
freely, so the network is the component.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.metrics import SpanF1, bio_spans, bmes_spans
from kexue.nn.components import build_component, component_config
from kexue.nn.crf import ConditionalRandomField, bio_constraints, bmes_constraints
from kexue.nn.encoders import CharConvEncoder
from kexue.nn.memm import MaximumEntropyMarkovModel
from kexue.optim import scaled_param_groups
from kexue.optim.groups import component_param_groups
from kexue.stages import CountF1Stages

Batch = dict[str, Tensor]  # "ids" (B, T, G), "tags" (B, T) with -1 padding, "index" (B,); predict: "texts"


class SequenceLabeler(CountF1Stages, L.LightningModule):
    """Tag each character; batches are ``{"ids": (B, T, G) ids per character, 0 = padding, "tags": (B, T)}``.

    Args:
        encoder: ``ids (B, T, G)``, ``mask (B, T)`` -> ``(B, T, encoder.output_dim)`` per-character vectors, e.g.
            :class:`kexue.nn.encoders.CharConvEncoder` (default) or ``CharRecurrentEncoder`` (BiLSTM); its
            ``num_embeddings`` and ``num_features`` are linked from the data's featurisation. In Python, also its
            ``{"class_path", "init_args"}`` dict (:func:`~kexue.lightning_modules.encoder_classifier.component_config`).
        tags: tag names in id order (linked from the datamodule). ``B/M/E/S`` tags are scored as words
            (SIGHAN), ``B-X/I-X/O`` as entities; both decode under their allowed transitions.
        head: ``"crf"`` (global normalisation, 5542), ``"memm"`` (per-step normalisation, 7213) or
            ``"softmax"`` (independent per-character classes, argmax decoding).
        constrained: decode crf/memm paths under ``bmes_constraints`` / ``bio_constraints``.
        transition_lr_multiplier: CRF transitions train at ``lr *`` this (:meth:`parameter_groups`).
        lr: AdamW learning rate (``--optimizer`` on the CLI replaces the optimizer; its groups are kept).
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        encoder: nn.Module = lazy_instance(CharConvEncoder),  # noqa: B008 (shown as class_path/init_args)
        tags: list[str] = ["B", "M", "E", "S"],  # noqa: B006
        head: Literal["crf", "memm", "softmax"] = "crf",
        constrained: bool = True,
        transition_lr_multiplier: float = 1.0,
        lr: float = 5e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        encoder = component_config(encoder)  # before save_hyperparameters: the default is one shared object
        self.save_hyperparameters()
        if head not in ("crf", "memm", "softmax"):
            raise ValueError(f"model.head must be 'crf', 'memm' or 'softmax', got {head!r}")
        if lr < 0 or transition_lr_multiplier < 0:
            raise ValueError(f"model.lr and model.transition_lr_multiplier must be >= 0, got {lr}, "
                             f"{transition_lr_multiplier}")
        K, bio = len(tags), any(t.startswith("I-") for t in tags)
        self.encoder = build_component(encoder)  # one per model
        self.emissions = nn.Linear(self.encoder.output_dim, K)
        self.chain: nn.Module | None = {
            "crf": lambda: ConditionalRandomField(K, transition_lr_multiplier=transition_lr_multiplier),
            "memm": lambda: MaximumEntropyMarkovModel(K),
            "softmax": lambda: None,
        }[head]()
        self.constraints = (bio_constraints if bio else bmes_constraints)(tags) if constrained else None
        self.spans = bio_spans if bio else bmes_spans
        self.words = not bio and all("-" not in t and t != "O" for t in tags)  # plain segmentation tags
        self.val_f1 = SpanF1(tags)
        self.test_f1 = SpanF1(tags)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Emission scores ``(B, T, K)`` and the mask ``(B, T)`` of real characters of ``ids (B, T, G)`` (the data's
        tokenizer's ids per character)."""
        mask = ids[..., 0] > 0  # (B, T): a character's own id is never 0
        return self.emissions(self.encoder(ids, mask)), mask  # (B, T, K), (B, T)

    def loss(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood per character (``token_mean``), the same scale for all three heads."""
        if self.chain is None:
            return F.cross_entropy(emissions[mask], tags[mask])
        return -self.chain(emissions, tags, mask, reduction="token_mean")

    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Best tag ids ``(B, T)``, ``-1`` at padding (a row of an empty text is all ``-1``)."""
        if self.chain is None:
            return emissions.argmax(-1).masked_fill(~mask, -1)
        first = torch.zeros_like(mask)
        first[:, 0] = True  # the chains need a first step; an empty text's is decoded, then dropped
        return self.chain.decode(emissions, mask | first, self.constraints).masked_fill(~mask, -1)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        emissions, mask = self(batch["ids"])
        loss = self.loss(emissions, batch["tags"], mask)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(mask))
        return loss

    def _evaluate(self, batch: Batch, stage: str, metric: SpanF1) -> None:
        emissions, mask = self(batch["ids"])
        self.log(f"{stage}/loss", self.loss(emissions, batch["tags"], mask), batch_size=len(mask), sync_dist=True)
        metric.update(self.decode(emissions, mask), batch["tags"], batch.get("index"))

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """One line per text, an empty one for an empty text: words separated by spaces (B/M/E/S), or the text
        with ``[entity/LABEL]`` marks (entities)."""
        paths = self.decode(*self(batch["ids"])).tolist()  # (B, T)
        return [self.render(text, path[: len(text)]) for text, path in zip(batch["texts"], paths)]

    def render(self, text: str, path: list[int]) -> str:
        """``text`` with its tag ids ``path`` shown as spaces between words or as ``[entity/LABEL]`` marks."""
        spans = sorted(self.spans([self.hparams.tags[i] for i in path]))
        if self.words:
            return " ".join(text[s:e] for s, e, _ in spans)
        pieces, pos = [], 0
        for s, e, label in spans:
            pieces += [text[pos:s], f"[{text[s:e]}/{label}]"]
            pos = e
        return "".join(pieces) + text[pos:]

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: the encoder's own if it has any (a BERT's layer-wise rates and no-decay groups), every
        other parameter but the CRF's, then the CRF's with ``lr_multiplier`` = ``transition_lr_multiplier``
        (:meth:`ConditionalRandomField.param_groups`)."""
        if not isinstance(self.chain, ConditionalRandomField):
            return component_param_groups(self, self.encoder)
        return [*component_param_groups(self, self.encoder, self.chain.parameters()), *self.chain.param_groups()]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.AdamW(scaled_param_groups(self.parameter_groups(), hp.lr), lr=hp.lr,
                                 weight_decay=hp.weight_decay)
