"""A BERT checkpoint folder as a task's encoder component: ``--model.encoder kexue.models.BertTextEncoder
--model.encoder.checkpoint FOLDER`` (当Bert遇上Keras：这可能是Bert最简单的打开姿势, https://kexue.fm/archives/6736).

The component reads token ids like every encoder; the DataModule's tokenizer component makes them in the DataLoader
workers from the same folder's ``vocab.txt`` (:class:`kexue.text.tokenizers.WordPiece` for texts,
:class:`~kexue.text.tokenizers.BertChars` per character; ``--config bert`` sets both). The tokenizer's size
arrives by the task's link as ``num_embeddings`` and is checked against the checkpoint
(:func:`kexue.models.sizes.check_vocabulary`). Its :meth:`~BertComponent.parameter_groups` give the fine-tuning
groups: layer-wise learning-rate decay and no weight decay on biases and LayerNorms, through the project's
parameter-group API (:func:`kexue.optim.scaled_param_groups`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.models.bert import BERT_SIZES, Bert
from kexue.models.checkpoints import read_config
from kexue.models.sizes import check_positions, check_vocabulary
from kexue.models.tokenizers import bert_tokenizer
from kexue.optim.groups import layerwise_lr_groups, no_weight_decay_groups


class BertComponent(nn.Module):
    """What the BERT encoder components share: the folder's :class:`Bert`, the check that the linked tokenizer
    size fits its embedding, and the fine-tuning :meth:`parameter_groups` (layer-wise learning-rate decay, no weight
    decay on biases and LayerNorms)."""

    def __init__(self, checkpoint: str, num_embeddings: int | None, weights: bool, pooler: bool, dropout: float,
                 layerwise_decay: float, weight_decay: float) -> None:
        super().__init__()
        if not 0 < layerwise_decay <= 1:
            raise ValueError(f"model.encoder.layerwise_decay must be in (0, 1], got {layerwise_decay}")
        rows = read_config(checkpoint, required=BERT_SIZES)["vocab_size"]  # checked before the weights are read
        check_vocabulary(rows, num_embeddings, checkpoint)
        self.bert = Bert.from_pretrained(checkpoint, pooler=pooler, mlm=False, weights=weights)
        self.checkpoint = checkpoint
        self.layerwise_decay, self.weight_decay = layerwise_decay, weight_decay
        self.dropout = nn.Dropout(dropout)
        self.output_dim = self.bert.config.dim

    def input_limit(self) -> tuple[int, str]:
        """``(positions, folder)``: the longest input this encoder takes (:func:`kexue.models.sizes.input_limit`)."""
        return self.bert.config.max_length, self.checkpoint

    def layers(self) -> list[nn.Module]:
        """Bottom to top: the embeddings (token, segment, positions and their LayerNorm), each block, the pooler."""
        t = self.bert.transformer
        embeddings = nn.ModuleList([self.bert.embed, self.bert.token_type,
                                    *(m for m in (t.positions, t.embedding_norm) if m is not None)])
        return [embeddings, *t.layers, *([self.bert.pooler] if self.bert.pooler is not None else [])]

    def parameter_groups(self) -> list[dict]:
        """Per layer (:meth:`layers`) a decayed and a non-decayed group, with ``lr_multiplier =
        layerwise_decay ** (layers above)`` (:func:`layerwise_lr_groups`, :func:`no_weight_decay_groups`)."""
        groups = []
        for layer, scaled in zip(self.layers(), layerwise_lr_groups(self.layers(), self.layerwise_decay)):
            for group in no_weight_decay_groups(layer.named_parameters(), self.weight_decay):
                groups.append({**group, "lr_multiplier": scaled["lr_multiplier"]})
        return groups


class BertTextEncoder(BertComponent):
    """Token ids ``(B, T)`` (``[CLS] pieces [SEP]``, 0 = ``[PAD]``; :class:`kexue.text.tokenizers.WordPiece` of the
    same folder) -> pooled vectors ``(B, D)`` by a BERT folder: a drop-in encoder of ``sentiment`` and ``multilabel``.

    Args:
        checkpoint: a Hugging Face BERT folder (``config.json``, ``model.safetensors``, ``vocab.txt``): the one
            ``kexue run pretrain`` writes, ``bert-base-chinese``, RoBERTa-wwm...
        num_embeddings: the tokenizer's id count (linked from the data), checked against the embedding's rows.
        weights: load the folder's weights; ``False``: the same network from random initialisation (the
            no-pretraining ablation).
        pooling: ``"cls"`` (the ``[CLS]`` vector, as the post), ``"pooler"`` (BERT's tanh pooler, needs its weights
            in the checkpoint), or ``"mean"`` over the real tokens.
        dropout: on the pooled vector.
        layerwise_decay: learning-rate multiplier between a layer and the one above (1 = none; 0.9 is usual).
        weight_decay: AdamW weight decay of the matrices (biases and LayerNorms get none).
    """

    def __init__(self, checkpoint: str, num_embeddings: int | None = None, weights: bool = True,
                 pooling: Literal["cls", "pooler", "mean"] = "cls", dropout: float = 0.1,
                 layerwise_decay: float = 1.0, weight_decay: float = 0.01) -> None:
        if pooling not in ("cls", "pooler", "mean"):
            raise ValueError(f"model.encoder.pooling must be 'cls', 'pooler' or 'mean', got {pooling!r}")
        super().__init__(checkpoint, num_embeddings, weights, pooling == "pooler", dropout, layerwise_decay,
                         weight_decay)
        self.pooling = pooling

    def forward(self, ids: Tensor) -> Tensor:
        check_positions(ids.shape[1], self.bert.config.max_length, self.checkpoint, "data.tokenizer.max_length")
        padding = ids > 0  # (B, T): the real tokens
        h = self.bert(ids, padding=padding)  # (B, T, D)
        if self.pooling == "pooler":
            pooled = self.bert.pooled(h)
        elif self.pooling == "mean":
            weights = padding[..., None].to(h.dtype)
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            pooled = h[:, 0]
        return self.dropout(pooled)  # (B, D)


class BertCharEncoder(BertComponent):
    """Per-character vectors by a BERT folder: ids ``(B, T, 1)`` (one vocabulary id per character,
    :class:`kexue.text.tokenizers.BertChars` of the same folder), ``mask (B, T)`` -> ``(B, T, D)``: the characters
    between ``[CLS]`` and ``[SEP]``, so pointers and tags stay on characters. The drop-in encoder of ``cws``,
    ``ner`` and ``relation_extraction`` (用bert4keras做三元组抽取, https://kexue.fm/archives/7161).

    Args:
        checkpoint, num_embeddings, weights, dropout, layerwise_decay, weight_decay: as :class:`BertTextEncoder`.
        num_features: ids per character (linked from the data): must be 1.
    """

    def __init__(self, checkpoint: str, num_embeddings: int | None = None, num_features: int = 1,
                 weights: bool = True, dropout: float = 0.1, layerwise_decay: float = 1.0,
                 weight_decay: float = 0.01) -> None:
        if num_features != 1:
            raise UsageError(f"model.encoder BertCharEncoder reads one vocabulary id per character and the data's "
                             f"tokenizer gives {num_features}: pass --data.tokenizer kexue.text.tokenizers.BertChars "
                             "--data.tokenizer.checkpoint FOLDER (or --config bert)")
        super().__init__(checkpoint, num_embeddings, weights, False, dropout, layerwise_decay, weight_decay)
        vocab = bert_tokenizer(checkpoint).get_vocab(with_added_tokens=False)
        if missing := [t for t in ("[CLS]", "[SEP]") if t not in vocab]:
            raise UsageError(f"{checkpoint}/vocab.txt lacks {', '.join(missing)}")
        self.cls, self.sep = vocab["[CLS]"], vocab["[SEP]"]

    def input_limit(self) -> tuple[int, str]:
        """Characters: the folder's positions less the two of ``[CLS]`` and ``[SEP]`` it wraps them in."""
        positions = self.bert.config.max_length
        return positions - 2, f"{self.checkpoint}: {positions} less [CLS] and [SEP]"

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        B, T = mask.shape
        positions = self.bert.config.max_length
        check_positions(T, positions - 2, f"{self.checkpoint}: {positions} less [CLS] and [SEP]")
        lengths = mask.sum(1)  # (B,)
        wrapped = torch.zeros(B, T + 2, dtype=torch.long, device=ids.device)  # (B, T + 2), 0 = [PAD]
        wrapped[:, 0] = self.cls
        wrapped[:, 1 : T + 1] = ids[..., 0] * mask
        wrapped[torch.arange(B, device=ids.device), lengths + 1] = self.sep
        padding = torch.arange(T + 2, device=ids.device)[None] < (lengths[:, None] + 2)  # (B, T + 2)
        return self.dropout(self.bert(wrapped, padding=padding)[:, 1 : T + 1])  # (B, T, D): the characters


__all__ = ["BertCharEncoder", "BertComponent", "BertTextEncoder"]
