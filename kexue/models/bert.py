"""BERT on the :class:`kexue.nn.Transformer` stack, loading and saving Hugging Face BERT folders.

Posts: 当Bert遇上Keras：这可能是Bert最简单的打开姿势 (https://kexue.fm/archives/6736) and 自己实现了一个bert4keras
(https://kexue.fm/archives/6915): token + position + segment embeddings, an embedding LayerNorm, post-LN blocks with
GELU, and on top an optional pooler (tanh dense on ``[CLS]``) and masked-language-model head whose decoder is the
word-embedding matrix. With :func:`kexue.nn.seq2seq_mask` as ``mask`` the same network is UniLM
(https://kexue.fm/archives/6933).
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.models.checkpoints import (
    CheckpointError,
    KeyMap,
    assign,
    built_from,
    gather,
    read_config,
    read_state,
    weights_file,
)
from kexue.models.sizes import check_positions, check_vocabulary
from kexue.nn.transformer import Transformer, TransformerConfig

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# config.json's hidden_act -> TransformerConfig.activation (gelu is the erf form, gelu_new the tanh one)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
# What a BERT folder's config.json must / may say, and of what kind (kexue.models.checkpoints.read_json_config)
BERT_SIZES = {key: int for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings")}
BERT_OPTIONS = {"type_vocab_size": int, "layer_norm_eps": float, "hidden_dropout_prob": float,
                "attention_probs_dropout_prob": float, "hidden_act": str, "position_embedding_type": str}


def activation(config: dict, key: str, source: str, default: str = "gelu") -> str:
    """Our activation for the ``key`` entry of a checkpoint's config (``default`` when absent), or a
    :class:`~kexue.models.checkpoints.CheckpointError` (a ValueError) naming it and the file ``source``."""
    act = config.get(key, default)
    if act not in ACTIVATIONS:
        raise CheckpointError(f"{key}={act!r} is not supported (supported: {sorted(ACTIVATIONS)})", source)
    return ACTIVATIONS[act]


class MaskedLMHead(nn.Module):
    """BERT's MLM head: ``h (B, T, D)`` -> ``(B, T, V)`` logits = ``LN(act(dense(h))) Eᵀ + b`` with ``E`` the word
    embeddings ``(V, D)`` (passed in, so that they stay tied)."""

    def __init__(self, dim: int, vocab_size: int, activation: str = "gelu", eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        acts = {"gelu": F.gelu, "gelu_tanh": partial(F.gelu, approximate="tanh"), "relu": F.relu}
        if activation not in acts:
            raise ValueError(f"the MLM head's activation must be one of {list(acts)}, got {activation!r}")
        self.act = acts[activation]

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        return F.linear(self.norm(self.act(self.dense(h))), embedding, self.bias)  # (B, T, V)


class Bert(nn.Module):
    """``ids (B, T)`` -> hidden states ``(B, T, D)``; :meth:`pooled` and :meth:`mlm_logits` read them.

    Args:
        vocab_size: ``V``.
        config: the stack's :class:`TransformerConfig`; BERT's layout is forced on it (post-LN, embedding LayerNorm,
            learned positions up to ``max_length``, no final norm, bidirectional). BERT uses ``eps=1e-12``.
        type_vocab_size: segment (token-type) embeddings.
        pooler: build the tanh dense layer on ``[CLS]``.
        mlm: build the masked-language-model head (decoder tied to the word embeddings).
    """

    def __init__(self, vocab_size: int, config: TransformerConfig | dict = TransformerConfig(),  # noqa: B008
                 type_vocab_size: int = 2, pooler: bool = True, mlm: bool = False) -> None:
        super().__init__()
        config = replace(TransformerConfig.coerce(config), prenorm=False, final_norm=False, embedding_norm=True,
                         positions="learned", causal=False)
        self.config, self.vocab_size, self.type_vocab_size = config, vocab_size, type_vocab_size
        self.embed = nn.Embedding(vocab_size, config.dim)
        self.token_type = nn.Embedding(type_vocab_size, config.dim)
        for table in (self.embed, self.token_type):
            nn.init.normal_(table.weight, std=0.02)
        self.transformer = Transformer(config)
        self.pooler = nn.Linear(config.dim, config.dim) if pooler else None
        self.mlm = MaskedLMHead(config.dim, vocab_size, config.activation, config.eps) if mlm else None

    def forward(self, ids: Tensor, token_type_ids: Tensor | None = None, padding: Tensor | None = None,
                mask: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        """Hidden states ``(B, T, D)`` of ``ids`` ``(B, T)``.

        Args:
            token_type_ids: ``(B, T)`` segment ids (default all 0).
            padding: ``(B, T)`` ``True`` for real tokens (default: all real).
            mask: an extra boolean attention mask broadcastable to ``(B, H, T, T)``, e.g. UniLM's
                :func:`kexue.nn.seq2seq_mask` ``(B, 1, T, T)``.
            condition: ``(B, C)`` for a BERT built with ``config.condition_dim = C``: every LayerNorm is then a
                Conditional LayerNorm on it (https://kexue.fm/archives/7124); ``None`` otherwise.
        """
        if ids.dim() != 2 or (ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size)):
            raise ValueError(f"ids must be (B, T) token ids in [0, {self.vocab_size}), got shape {tuple(ids.shape)}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(ids)
        if token_type_ids.shape != ids.shape or (
                ids.numel() and (int(token_type_ids.min()) < 0 or int(token_type_ids.max()) >= self.type_vocab_size)):
            raise ValueError(f"token_type_ids of shape {tuple(token_type_ids.shape)} for ids {tuple(ids.shape)}: "
                             f"need the same shape and values in [0, {self.type_vocab_size})")
        x = self.embed(ids) + self.token_type(token_type_ids)  # (B, T, D); the stack adds positions, then LN
        return self.transformer(x, padding=padding, mask=mask, condition=condition)  # (B, T, D)

    def pooled(self, hidden: Tensor) -> Tensor:
        """The pooler's ``tanh(W h_[CLS] + b)`` ``(B, D)`` of hidden states ``(B, T, D)``."""
        if self.pooler is None:
            raise ValueError("this Bert was built without a pooler (pooler=False)")
        return torch.tanh(self.pooler(hidden[:, 0]))  # (B, D)

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """Masked-LM logits ``(B, T, V)`` of hidden states ``(B, T, D)``."""
        if self.mlm is None:
            raise ValueError("this Bert was built without an MLM head (mlm=False)")
        return self.mlm(hidden, self.embed.weight)  # (B, T, V)

    @classmethod
    def from_pretrained(cls, path: str | Path, pooler: bool | None = None, mlm: bool | None = None,
                        weights: bool = True, condition_dim: int | None = None) -> Bert:
        """A Hugging Face BERT folder (``BertModel``, ``BertForMaskedLM`` or ``BertForPreTraining`` weights).

        ``pooler``/``mlm``: build those heads (``None``: when the checkpoint has their weights). Every tensor is
        copied by :func:`hf_key_map` with its shape checked; weights the map does not use are an error except the
        next-sentence head and tied copies. ``weights=False``: the same network from random initialisation (only
        ``config.json`` is read; ``None`` heads are not built): the "no pretraining" ablation of a fine-tuning run.
        ``condition_dim``: make every stack LayerNorm a Conditional LayerNorm on a ``(B, condition_dim)`` condition
        (https://kexue.fm/archives/7124): the checkpoint's LayerNorm weights become its bases and the new condition
        projections start at zero, so before training the model equals the checkpoint for any condition.
        """
        folder = _Folder(path, weights, pooler, mlm, condition_dim)
        model = Bert(folder.vocab_size, folder.stack, folder.type_vocab_size, folder.pooler, folder.mlm)
        folder.load_into(model)
        return model

    def hf_config(self) -> dict:
        """This model's ``config.json`` in Hugging Face's format."""
        c = self.config
        wanted = {"norm": ("layernorm",), "head_dim": (None, c.dim // c.num_heads), "num_kv_heads": (None, c.num_heads),
                  "bias": (True,), "attention": ("dot",), "condition_dim": (None,)}
        for field, allowed in wanted.items():
            if getattr(c, field) not in allowed:
                raise ValueError(f"a Hugging Face BERT needs config.{field} in {allowed}, got {getattr(c, field)!r}")
        if c.activation not in HF_ACTIVATIONS:
            raise ValueError(f"a Hugging Face BERT cannot have activation={c.activation!r} "
                             f"(supported: {sorted(HF_ACTIVATIONS)})")
        return {
            "architectures": ["BertForMaskedLM" if self.mlm is not None else "BertModel"], "model_type": "bert",
            "vocab_size": self.vocab_size, "hidden_size": c.dim, "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads, "intermediate_size": c.ffn_dim or 4 * c.dim,
            "hidden_act": HF_ACTIVATIONS[c.activation], "max_position_embeddings": c.max_length,
            "type_vocab_size": self.type_vocab_size, "layer_norm_eps": c.eps, "hidden_dropout_prob": c.dropout,
            "attention_probs_dropout_prob": c.attention_dropout, "position_embedding_type": "absolute",
            "pad_token_id": 0, "initializer_range": 0.02,
        }

    def save_pretrained(self, path: str | Path, tokenizer: Tokenizer | None = None) -> None:
        """Write a Hugging Face BERT folder that ``transformers``' ``BertModel`` (or ``BertForMaskedLM`` when this
        model has an MLM head) loads: ``config.json``, ``model.safetensors`` under Hugging Face key names, and for a
        WordPiece ``tokenizer`` (:func:`kexue.models.tokenizers.wordpiece_tokenizer`) ``vocab.txt``,
        ``tokenizer.json`` and ``tokenizer_config.json``."""
        from safetensors.torch import save_file

        config = self.hf_config()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        prefix = "bert." if self.mlm is not None else ""  # BertForMaskedLM nests the encoder under "bert."
        save_file(gather(self, hf_key_map(self, prefix)), path / "model.safetensors", metadata={"format": "pt"})
        (path / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if tokenizer is not None:
            from kexue.models.tokenizers import save_wordpiece

            save_wordpiece(tokenizer, path)


class _Folder:
    """What :meth:`Bert.from_pretrained` and :class:`BertFromFolder` read from a Hugging Face BERT folder: the
    sizes of ``config.json``, the heads to build, and (with ``weights``) the tensors, loaded by :meth:`load_into`."""

    def __init__(self, path: str | Path, weights: bool, pooler: bool | None, mlm: bool | None,
                 condition_dim: int | None) -> None:
        config = read_config(path, required=BERT_SIZES, optional=BERT_OPTIONS)
        state = read_state(path) if weights else {}
        self.origin, self.weights, self.condition_dim = str(path), weights, condition_dim
        where = Path(path) / "config.json"
        self.weights_origin = str(weights_file(path)) if weights else self.origin
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"position_embedding_type={config['position_embedding_type']!r} is not supported "
                                  "(only 'absolute')", where)
        self.state = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
                      for k, v in state.items()}  # the TF-converted checkpoints' names
        self.prefix = "bert." if any(k.startswith("bert.") for k in self.state) else ""
        self.pooler = f"{self.prefix}pooler.dense.weight" in self.state if pooler is None else pooler
        self.mlm = "cls.predictions.bias" in self.state if mlm is None else mlm
        self.vocab_size, self.type_vocab_size = config["vocab_size"], config.get("type_vocab_size", 2)
        with built_from(where):
            self.stack = TransformerConfig(
                dim=config["hidden_size"], num_layers=config["num_hidden_layers"],
                num_heads=config["num_attention_heads"], ffn_dim=config["intermediate_size"],
                activation=activation(config, "hidden_act", str(where)),
                eps=config.get("layer_norm_eps", 1e-12), dropout=config.get("hidden_dropout_prob", 0.1),
                attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
                max_length=config["max_position_embeddings"], condition_dim=condition_dim)

    def load_into(self, model: Bert) -> None:
        """Copy the folder's tensors into ``model`` (built from :attr:`stack` and the heads); nothing without
        ``weights``."""
        if not self.weights:
            return
        ignore = [r"position_ids$", r"^cls\.seq_relationship\.", r"^cls\.predictions\.decoder\.(weight|bias)$"]
        ignore += [] if self.pooler else [r"pooler\.dense\."]
        ignore += [] if self.mlm else [r"^cls\.predictions\."]
        keys, state = dict(hf_key_map(model, self.prefix)), self.state
        if self.condition_dim is not None:  # the condition projections are new: they keep their zeros
            new = {f"<new>.{k}": torch.zeros_like(v) for k, v in model.named_parameters()
                   if ".to_gamma." in k or ".to_beta." in k}
            state = {**state, **new}
            keys.update({k.removeprefix("<new>."): k for k in new})
        assign(model, state, keys, ignore, self.weights_origin)


class BertFromConfig(Bert):
    """A BERT network component trained from scratch: :class:`Bert` of these sizes (``config.json``'s, by their
    :class:`~kexue.nn.transformer.TransformerConfig` names), random initialisation, ``vocab_size`` and
    ``max_length`` linked from the data. Its twin :class:`BertFromFolder` loads a pretrained one.

    The sizes are flat arguments, not a nested ``TransformerConfig``: ``--model.bert.dim 512`` then changes one
    size and keeps the others (a partly given nested dataclass falls back to the dataclass's own, non-BERT,
    defaults), and a ``lazy_instance`` default stays printable. Posts: https://kexue.fm/archives/6736 and /6915.

    Args:
        vocab_size: the tokenizer's ids ``V`` (linked from the data): the embedding's rows.
        max_length: the data's longest example in tokens (linked): a network trained here gets exactly that many
            learned positions.
        dim, num_layers, num_heads, ffn_dim: width, blocks, heads, feed-forward width.
        dropout, attention_dropout: on embeddings and sublayer outputs / on attention weights.
        activation: of the feed-forward and the MLM head (BERT: ``gelu``).
        eps: the LayerNorms' floor (BERT: 1e-12).
        condition_dim: make every LayerNorm conditional on a ``(B, condition_dim)`` vector (kexue.fm/archives/7124).
        type_vocab_size: segment embeddings.
        pooler, mlm: build the pooler / the masked-LM head.
    """

    def __init__(self, vocab_size: int = 0, max_length: int = 512, dim: int = 256, num_layers: int = 4,
                 num_heads: int = 4, ffn_dim: int = 1024, dropout: float = 0.1, attention_dropout: float = 0.1,
                 activation: Literal["gelu", "gelu_tanh", "relu"] = "gelu", eps: float = 1e-12,
                 condition_dim: int | None = None, type_vocab_size: int = 2, pooler: bool = False,
                 mlm: bool = True) -> None:
        if vocab_size < 1 or max_length < 1:
            raise UsageError(f"model.bert needs vocab_size >= 1 and max_length >= 1 (linked from the data), got "
                             f"{vocab_size} and {max_length}")
        config = TransformerConfig(dim=dim, num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim,
                                   dropout=dropout, attention_dropout=attention_dropout, activation=activation,
                                   eps=eps, max_length=max_length, condition_dim=condition_dim)
        super().__init__(vocab_size, config, type_vocab_size, pooler, mlm)


class BertFromFolder(Bert):
    """A BERT network component built from a Hugging Face BERT folder (``kexue run pretrain``'s ``<run>/bert/``,
    ``bert-base-chinese``, RoBERTa-wwm...), weights loaded by :meth:`Bert.from_pretrained`'s key map; the twin of
    :class:`BertFromConfig`. The data's tokenizer must be the folder's (same ``vocab.txt``): the linked
    ``vocab_size`` and ``max_length`` are checked against ``config.json`` (:mod:`kexue.models.sizes`,
    one :class:`~kexue.errors.UsageError`). Posts: https://kexue.fm/archives/6736 and /6915.

    Args:
        path: the folder.
        weights: ``False``: the folder's network from random initialisation (the no-pretraining ablation).
        vocab_size, max_length: linked from the data (0: not linked, not checked).
        condition_dim: Conditional LayerNorms on a ``(B, condition_dim)`` vector whose zero-initialised projections
            leave the pretrained network unchanged before training (kexue.fm/archives/7124).
        pooler, mlm: build the pooler / the masked-LM head (``None``: when the folder has its weights).
    """

    def __init__(self, path: str, weights: bool = True, vocab_size: int = 0, max_length: int = 0,
                 condition_dim: int | None = None, pooler: bool | None = False, mlm: bool | None = True) -> None:
        if not Path(path).is_dir():
            raise UsageError("no BERT folder there (model.bert.path)", path)
        config = read_config(path, required=BERT_SIZES, optional=BERT_OPTIONS)  # before any weight is read
        check_vocabulary(config["vocab_size"], vocab_size, path)
        check_positions(max_length, config["max_position_embeddings"], path)
        folder = _Folder(path, weights, pooler, mlm, condition_dim)
        super().__init__(folder.vocab_size, folder.stack, folder.type_vocab_size, folder.pooler, folder.mlm)
        folder.load_into(self)
        self.path = str(path)


def hf_key_map(model: Bert, prefix: str = "") -> KeyMap:
    """``{our key: Hugging Face key}`` for ``model`` (``prefix`` ``"bert."`` in ``BertFor*`` checkpoints); our fused
    ``qkv`` comes from the separate ``query``, ``key``, ``value`` Linear maps, in that order."""
    p = prefix
    keys: dict = {
        "embed.weight": f"{p}embeddings.word_embeddings.weight",
        "token_type.weight": f"{p}embeddings.token_type_embeddings.weight",
        "transformer.positions.embedding.weight": f"{p}embeddings.position_embeddings.weight",
    }
    for part in ("weight", "bias"):
        keys[f"transformer.embedding_norm.{part}"] = f"{p}embeddings.LayerNorm.{part}"
        for i in range(model.config.num_layers):
            ours, theirs = f"transformer.layers.{i}.", f"{p}encoder.layer.{i}."
            keys[f"{ours}attn.qkv.{part}"] = tuple(f"{theirs}attention.self.{n}.{part}" for n in ("query", "key",
                                                                                                 "value"))
            keys[f"{ours}attn.out.{part}"] = f"{theirs}attention.output.dense.{part}"
            keys[f"{ours}attn_norm.{part}"] = f"{theirs}attention.output.LayerNorm.{part}"
            keys[f"{ours}ffn.up.{part}"] = f"{theirs}intermediate.dense.{part}"
            keys[f"{ours}ffn.down.{part}"] = f"{theirs}output.dense.{part}"
            keys[f"{ours}ffn_norm.{part}"] = f"{theirs}output.LayerNorm.{part}"
        if model.pooler is not None:
            keys[f"pooler.{part}"] = f"{p}pooler.dense.{part}"
        if model.mlm is not None:
            keys[f"mlm.dense.{part}"] = f"cls.predictions.transform.dense.{part}"
            keys[f"mlm.norm.{part}"] = f"cls.predictions.transform.LayerNorm.{part}"
    if model.mlm is not None:
        keys["mlm.bias"] = "cls.predictions.bias"
    return keys


__all__ = ["Bert", "BertFromConfig", "BertFromFolder", "MaskedLMHead", "hf_key_map"]
