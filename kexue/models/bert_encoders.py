"""A BERT checkpoint folder as a task's encoder component: ``--model.encoder kexue.models.BertTextEncoder
--model.encoder.checkpoint FOLDER`` (当Bert遇上Keras：这可能是Bert最简单的打开姿势, https://kexue.fm/archives/6736).

The component tokenises the batch's texts itself with the folder's ``vocab.txt`` (the hashed features of the
non-BERT encoders are computed by the DataModule, a BERT's ids depend on the checkpoint), so any BERT folder works
with an unchanged DataModule; it says so with ``reads_texts = True``. Its :meth:`parameter_groups` give the
fine-tuning groups: layer-wise learning-rate decay and no weight decay on biases and LayerNorms, through the
project's parameter-group API (:func:`kexue.optim.scaled_param_groups`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Sequence

import torch
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.models.bert import Bert
from kexue.models.checkpoints import read_config
from kexue.models.tokenizers import bert_tokenizer
from kexue.optim.groups import layerwise_lr_groups, no_weight_decay_groups


def load_bert_and_tokenizer(checkpoint: str, weights: bool = True, pooler: bool = False) -> tuple[Bert, Any]:
    """The :class:`Bert` of a folder (random initialisation when ``weights`` is false) and its WordPiece tokenizer;
    a ``vocab.txt`` whose size is not the checkpoint's ``vocab_size`` is a ValueError naming both."""
    tokenizer = bert_tokenizer(checkpoint)
    size = read_config(checkpoint).get("vocab_size")
    if tokenizer.get_vocab_size(with_added_tokens=False) != size:
        raise ValueError(f"{checkpoint}: vocab.txt has {tokenizer.get_vocab_size(with_added_tokens=False)} pieces "
                         f"but config.json says vocab_size={size}: the vocabulary is not this checkpoint's")
    return Bert.from_pretrained(checkpoint, pooler=pooler, mlm=False, weights=weights), tokenizer


class BertComponent(nn.Module):
    """What the BERT encoder components share: the folder's :class:`Bert` and tokenizer, and the fine-tuning
    :meth:`parameter_groups` (layer-wise learning-rate decay, no weight decay on biases and LayerNorms)."""

    reads_texts: ClassVar[bool] = True  # the task passes the batch's texts (and, per character, their mask)

    def __init__(self, checkpoint: str, weights: bool, pooler: bool, dropout: float, layerwise_decay: float,
                 weight_decay: float) -> None:
        super().__init__()
        if not 0 < layerwise_decay <= 1:
            raise ValueError(f"model.encoder.layerwise_decay must be in (0, 1], got {layerwise_decay}")
        self.bert, self.tokenizer = load_bert_and_tokenizer(checkpoint, weights, pooler=pooler)
        self.layerwise_decay, self.weight_decay = layerwise_decay, weight_decay
        self.dropout = nn.Dropout(dropout)
        self.output_dim = self.bert.config.dim

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
    """Texts -> pooled vectors ``(B, D)`` by a BERT folder: a drop-in encoder of ``sentiment`` and ``multilabel``.

    Args:
        checkpoint: a Hugging Face BERT folder (``config.json``, ``model.safetensors``, ``vocab.txt``): the one
            ``kexue run pretrain`` writes, ``bert-base-chinese``, RoBERTa-wwm...
        weights: load the folder's weights; ``False``: the same network from random initialisation (the
            no-pretraining ablation).
        pooling: ``"cls"`` (the ``[CLS]`` vector, as the post), ``"pooler"`` (BERT's tanh pooler, needs its weights
            in the checkpoint), or ``"mean"`` over the real tokens.
        max_length: tokens per text including ``[CLS]`` and ``[SEP]`` (longer texts are cut).
        dropout: on the pooled vector.
        layerwise_decay: learning-rate multiplier between a layer and the one above (1 = none; 0.9 is usual).
        weight_decay: AdamW weight decay of the matrices (biases and LayerNorms get none).
    """

    def __init__(self, checkpoint: str, weights: bool = True, pooling: Literal["cls", "pooler", "mean"] = "cls",
                 max_length: int = 128, dropout: float = 0.1, layerwise_decay: float = 1.0,
                 weight_decay: float = 0.01) -> None:
        if pooling not in ("cls", "pooler", "mean"):
            raise ValueError(f"model.encoder.pooling must be 'cls', 'pooler' or 'mean', got {pooling!r}")
        super().__init__(checkpoint, weights, pooling == "pooler", dropout, layerwise_decay, weight_decay)
        limit = min(max_length, self.bert.config.max_length)
        if limit < 3:
            raise ValueError(f"model.encoder.max_length must be >= 3, got {max_length}")
        self.tokenizer.enable_truncation(limit)
        self.pooling = pooling

    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Token ids ``(B, T)`` and the real-token mask ``(B, T)`` of ``texts``, on the model's device."""
        rows = self.tokenizer.encode_batch(list(texts))
        device = self.bert.embed.weight.device
        ids = torch.tensor([r.ids for r in rows], dtype=torch.long, device=device)
        return ids, torch.tensor([r.attention_mask for r in rows], dtype=torch.bool, device=device)

    def forward(self, texts: Sequence[str]) -> Tensor:
        ids, padding = self.encode(texts)
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
    """Per-character vectors by a BERT folder: ``texts`` (the characters the task sees), ``mask (B, T)`` ->
    ``(B, T, D)``, one token per character between ``[CLS]`` and ``[SEP]`` (the character, else its lower case, else
    ``[unused1]`` for white space as bert4keras does, else ``[UNK]``), so pointers and tags stay on characters. The
    drop-in encoder of ``cws``, ``ner`` and ``relation_extraction`` (用bert4keras做三元组抽取,
    https://kexue.fm/archives/7161).

    Args:
        checkpoint, weights, dropout, layerwise_decay, weight_decay: as :class:`BertTextEncoder`.
    """

    def __init__(self, checkpoint: str, weights: bool = True, dropout: float = 0.1, layerwise_decay: float = 1.0,
                 weight_decay: float = 0.01) -> None:
        super().__init__(checkpoint, weights, False, dropout, layerwise_decay, weight_decay)
        self.vocab = self.tokenizer.get_vocab(with_added_tokens=False)
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]") if t not in self.vocab]
        if missing:
            raise ValueError(f"{checkpoint}/vocab.txt lacks {', '.join(missing)}")

    def token_ids(self, text: str) -> list[int]:
        """``[CLS]``, one id per character of ``text``, ``[SEP]``: ``len(text) + 2`` ids."""
        vocab = self.vocab
        unk = vocab["[UNK]"]
        space = vocab.get("[unused1]", unk)
        ids = [vocab.get(c, vocab.get(c.lower(), space if c.isspace() else unk)) for c in text]
        return [vocab["[CLS]"], *ids, vocab["[SEP]"]]

    def forward(self, texts: Sequence[str], mask: Tensor) -> Tensor:
        B, T = mask.shape
        positions = self.bert.config.max_length
        if T + 2 > positions:
            raise UsageError(f"sentences of {T} characters need {T + 2} BERT positions and this checkpoint has "
                             f"{positions}: pass --data.max_length {positions - 2} or less")
        ids = torch.full((B, T + 2), self.vocab["[PAD]"], dtype=torch.long, device=mask.device)  # (B, T + 2)
        for i, text in enumerate(texts):
            ids[i, : len(text) + 2] = torch.tensor(self.token_ids(text[:T]), device=mask.device)
        padding = torch.arange(T + 2, device=mask.device)[None] < (mask.sum(1, keepdim=True) + 2)  # (B, T + 2)
        return self.dropout(self.bert(ids, padding=padding)[:, 1 : T + 1])  # (B, T, D): the characters


__all__ = ["BertCharEncoder", "BertComponent", "BertTextEncoder", "load_bert_and_tokenizer"]
