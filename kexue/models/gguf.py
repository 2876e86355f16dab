"""Llama-architecture GGUF files (llama.cpp's format) loaded into our own :class:`kexue.models.CausalLM` and a
Hugging Face ``tokenizers`` BPE built from the file's vocabulary: ``model, tokenizer = load_gguf(path)``.
:func:`load_smollm2` loads SmolLM2-135M-Instruct (Q4_1) from the ``smollm2`` asset (``kexue fetch smollm2``).

The weights are dequantised to float32 by the ``gguf`` package and mapped by an explicit key map
(:func:`gguf_key_map`) with a shape check per tensor. One fact decides the rotary layout: llama.cpp's converter
permutes the rows of each head of ``attn_q`` and ``attn_k`` so that the rotary pairs, which are ``(i, i + Dh/2)``
in a Hugging Face checkpoint, become adjacent rows ``(2i, 2i + 1)``. A query·key product is unchanged by a
permutation applied to both, so the stored rows are used as they are, with ``rope_interleaved=True``
(tested against a hand-written half-layout forward on the un-permuted weights, and against transformers).

Posts: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933) for the causal language model;
Transformer升级之路：2、博采众长的旋转式位置编码 (https://kexue.fm/archives/8265) for the rotary positions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from kexue.models.causal_lm import CausalLM
from kexue.models.checkpoints import CheckpointError, KeyMap, MissingCheckpointFile, assign, built_from, read_by_library
from kexue.nn.transformer import TransformerConfig

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) for byte-level BPE -> whether each digit is split off
# first (its "\p{N}" rule, SmolLM2's own tokenizer.json `Digits(individual_digits=True)`) before the GPT-2 split.
BYTE_LEVEL_PRE = {"gpt2": False, "default": False, "smollm": True, "starcoder": True, "refact": True}
GGUF_CONTROL, GGUF_USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values


def _field(fields: dict, key: str, path: Path, default: Any = ...) -> Any:  # noqa: ANN401 (GGUF values vary)
    """The value of metadata ``key`` (a number, string or list), or a CheckpointError naming it and the file."""
    if key not in fields:
        if default is ...:
            raise CheckpointError(f"GGUF metadata has no {key!r}", path)
        return default
    return fields[key].contents()


def gguf_config(fields: dict, path: Path, vocab_size: int = 0) -> tuple[TransformerConfig, int]:
    """The :class:`TransformerConfig` and vocabulary size a Llama GGUF's metadata describes (``vocab_size``: the
    fallback when neither ``llama.vocab_size`` nor the token list gives it)."""
    arch = _field(fields, "general.architecture", path)
    if arch != "llama":
        raise CheckpointError(f"general.architecture is {arch!r}; only 'llama' GGUF files load into CausalLM", path)
    dim = int(_field(fields, "llama.embedding_length", path))
    heads = int(_field(fields, "llama.attention.head_count", path))
    head_dim = int(_field(fields, "llama.attention.key_length", path, dim // heads))
    rotary_dim = int(_field(fields, "llama.rope.dimension_count", path, head_dim))
    if rotary_dim != head_dim:
        raise CheckpointError(f"llama.rope.dimension_count={rotary_dim} rotates part of each head "
                              f"(head_dim={head_dim}); CausalLM rotates whole heads", path)
    scaling = _field(fields, "llama.rope.scaling.type", path, "none")
    if scaling not in ("none", ""):
        raise CheckpointError(f"llama.rope.scaling.type={scaling!r} is not supported (plain rotary only)", path)
    tokens = _field(fields, "tokenizer.ggml.tokens", path, None)
    vocab_size = int(_field(fields, "llama.vocab_size", path, len(tokens) if tokens is not None else vocab_size))
    config = TransformerConfig(
        dim=dim,
        num_layers=int(_field(fields, "llama.block_count", path)),
        num_heads=heads,
        num_kv_heads=int(_field(fields, "llama.attention.head_count_kv", path, heads)),
        head_dim=head_dim if head_dim * heads != dim else None,
        ffn_dim=int(_field(fields, "llama.feed_forward_length", path)),
        activation="swiglu",
        norm="rmsnorm",
        prenorm=True,
        final_norm=True,
        eps=float(_field(fields, "llama.attention.layer_norm_rms_epsilon", path)),
        bias=False,
        dropout=0.0,
        positions="rotary",
        max_length=int(_field(fields, "llama.context_length", path, 2048)),
        rope_base=float(_field(fields, "llama.rope.freq_base", path, 10000.0)),
        rope_interleaved=True,  # GGUF's q/k rows are already in adjacent-pair order (module docstring)
        causal=True,
    )
    return config, vocab_size


def gguf_key_map(num_layers: int, tied: bool) -> dict[str, str | tuple[str, ...]]:
    """Our state-dict key -> the GGUF tensor it comes from; a tuple (q, k, v) is stacked along the rows into our
    fused ``qkv`` (the :mod:`kexue.models.checkpoints` convention). ``tied``: the file has no ``output.weight``, the
    output projection is the embedding."""
    keys: dict[str, str | tuple[str, ...]] = {"embed.weight": "token_embd.weight",
                                              "transformer.final_norm.weight": "output_norm.weight"}
    for i in range(num_layers):
        ours, theirs = f"transformer.layers.{i}", f"blk.{i}"
        keys |= {
            f"{ours}.attn_norm.weight": f"{theirs}.attn_norm.weight",
            f"{ours}.attn.qkv.weight": (f"{theirs}.attn_q.weight", f"{theirs}.attn_k.weight",
                                             f"{theirs}.attn_v.weight"),
            f"{ours}.attn.out.weight": f"{theirs}.attn_output.weight",
            f"{ours}.ffn_norm.weight": f"{theirs}.ffn_norm.weight",
            f"{ours}.ffn.gate.weight": f"{theirs}.ffn_gate.weight",
            f"{ours}.ffn.up.weight": f"{theirs}.ffn_up.weight",
            f"{ours}.ffn.down.weight": f"{theirs}.ffn_down.weight",
        }
    if not tied:
        keys["lm_head.weight"] = "output.weight"
    return keys


def gguf_tokenizer(fields: dict, path: Path) -> Tokenizer:
    """A byte-level BPE ``tokenizers.Tokenizer`` from ``tokenizer.ggml.*``: the vocabulary in file order (ids are
    positions), the merges, control tokens as special tokens and user-defined ones as added tokens, the
    pre-tokenizer llama.cpp uses for ``tokenizer.ggml.pre``, and a BOS / EOS around texts when
    ``add_bos_token`` / ``add_eos_token`` say so (:func:`gguf_special_flags`)."""
    kind, pre = _field(fields, "tokenizer.ggml.model", path), _field(fields, "tokenizer.ggml.pre", path, "default")
    if kind != "gpt2" or pre not in BYTE_LEVEL_PRE:
        raise CheckpointError(f"tokenizer.ggml.model={kind!r}, tokenizer.ggml.pre={pre!r}: only byte-level BPE "
                              f"('gpt2') with pre-tokenizer {', '.join(BYTE_LEVEL_PRE)} is supported", path)
    tokens = _field(fields, "tokenizer.ggml.tokens", path)
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise CheckpointError(f"tokenizer.ggml.tokens repeats {len(tokens) - len(vocab)} tokens", path)
    merges = [tuple(m.split(" ")) for m in _field(fields, "tokenizer.ggml.merges", path)]
    if any(len(m) != 2 for m in merges):
        raise CheckpointError("tokenizer.ggml.merges has an entry that is not two tokens separated by one space", path)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    split = [pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated")] if BYTE_LEVEL_PRE[pre] else []
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [*split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    types = _field(fields, "tokenizer.ggml.token_type", path, [])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == GGUF_CONTROL])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False)
                          for t, kind in zip(tokens, types) if kind == GGUF_USER_DEFINED])
    add_bos, add_eos = gguf_special_flags(fields, path)
    bos, eos = (_field(fields, f"tokenizer.ggml.{k}_token_id", path, None) for k in ("bos", "eos"))
    frame = [(tokens[i], int(i)) for i, on in ((bos, add_bos), (eos, add_eos)) if on and i is not None]
    if frame:
        start = [tokens[bos]] if add_bos and bos is not None else []
        end = [tokens[eos]] if add_eos and eos is not None else []
        tokenizer.post_processor = processors.TemplateProcessing(
            single=" ".join([*start, "$A", *end]), pair=" ".join([*start, "$A", "$B", *end]),
            special_tokens=list(dict(frame).items()))
    return tokenizer


def gguf_special_flags(fields: dict, path: Path) -> tuple[bool, bool]:
    """``(add_bos, add_eos)``: whether texts get the BOS / EOS token, from ``tokenizer.ggml.add_bos_token`` /
    ``add_eos_token`` (``False`` when unset, llama.cpp's default for a byte-level BPE)."""
    return tuple(bool(_field(fields, f"tokenizer.ggml.add_{k}_token", path, False)) for k in ("bos", "eos"))


def read_gguf(path: str | os.PathLike):  # noqa: ANN201 (a gguf.GGUFReader; gguf is imported lazily)
    """A ``gguf.GGUFReader`` of ``path``; a :class:`~kexue.models.checkpoints.MissingCheckpointFile` (a
    FileNotFoundError) or a :class:`~kexue.models.checkpoints.CheckpointError` (a ValueError) naming the file if it
    is not a GGUF (bad magic, truncated)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointFile(f"no GGUF file at {path}")
    with read_by_library(path, "cannot read as GGUF"):
        return gguf.GGUFReader(path)


def check_qkv_parts(state: dict[str, torch.Tensor], key_map: KeyMap, config: TransformerConfig, origin: str) -> None:
    """Each of q, k, v on its own: the stacked shape alone would not say which of the three is wrong."""
    head_dim = config.head_dim or config.dim // config.num_heads
    rows = [config.num_heads * head_dim] + 2 * [(config.num_kv_heads or config.num_heads) * head_dim]
    for ours, theirs in key_map.items():
        if not isinstance(theirs, tuple):
            continue
        start = 0
        for name, n in zip(theirs, rows):
            want = (n, config.dim)
            if name in state and tuple(state[name].shape) != want:
                raise CheckpointError(f"{origin}: {name!r} has shape {tuple(state[name].shape)} but our {ours!r} rows "
                                      f"{start}:{start + n} need {want}")
            start += n


def load_gguf(path: str | os.PathLike) -> tuple[CausalLM, Tokenizer]:
    """A Llama GGUF file as ``(CausalLM in eval mode with float32 weights, tokenizers.Tokenizer)``.

    Every tensor is dequantised by ``gguf.quants.dequantize`` and copied by :func:`gguf_key_map` through
    :func:`kexue.models.checkpoints.assign`. Raises FileNotFoundError, or a ValueError naming the file (both
    UsageErrors: :mod:`kexue.models.checkpoints`), for a file
    that is not a Llama GGUF, lacks a tensor or metadata key, has a tensor no key maps, or holds a tensor whose
    shape is not the one its key needs (both keys and both shapes named).
    """
    import gguf

    path = Path(path)
    reader = read_gguf(path)
    tensors = {t.name: t for t in reader.tensors}
    embed_rows = int(tensors["token_embd.weight"].shape[-1]) if "token_embd.weight" in tensors else 0
    with built_from(path):  # metadata of the wrong type, or sizes that do not fit together
        config, vocab_size = gguf_config(reader.fields, path, embed_rows)
    if "rope_freqs.weight" in tensors:
        raise CheckpointError("rope_freqs.weight (Llama 3.1 frequency scaling) is not supported", path)
    tied = "output.weight" not in tensors
    state = {}
    for name, t in tensors.items():
        with read_by_library(path, f"cannot dequantise tensor {name!r}"):
            weight = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            weight = weight.reshape(tuple(int(n) for n in reversed(t.shape)))  # GGUF lists dims innermost first
        if not weight.flags.writeable:  # an unquantised tensor is a view of the read-only memory map
            weight = weight.copy()
        state[name] = torch.from_numpy(weight)  # (out, in) for a matrix
    with built_from(path):
        model = CausalLM(vocab_size, config, tie_embeddings=tied)
    key_map = gguf_key_map(config.num_layers, tied)
    check_qkv_parts(state, key_map, config, str(path))
    assign(model, state, key_map, origin=str(path))
    with read_by_library(path, "cannot build its tokenizer"):  # token lists or merges of the wrong types
        tokenizer = gguf_tokenizer(reader.fields, path)
    return model.eval(), tokenizer


class GGUFTokenizer(NamedTuple):
    """What :func:`load_gguf_tokenizer` reads: the tokenizer, the BOS / EOS ids (``None`` when unset) and whether
    texts get them (``add_bos`` / ``add_eos``, :func:`gguf_special_flags`)."""

    tokenizer: Tokenizer
    bos_id: int | None
    eos_id: int | None
    add_bos: bool
    add_eos: bool


def load_gguf_tokenizer(path: str | os.PathLike) -> GGUFTokenizer:
    """Only the tokenizer of a GGUF file (no tensors are read), with its BOS / EOS ids and flags."""
    path = Path(path)
    fields = read_gguf(path).fields
    arch = _field(fields, "general.architecture", path)
    if arch != "llama":  # the same check as gguf_config's, before the tokenizer fails on what another arch lacks
        raise CheckpointError(f"general.architecture is {arch!r}; only 'llama' GGUF files load into CausalLM", path)
    bos, eos = (_field(fields, f"tokenizer.ggml.{k}_token_id", path, None) for k in ("bos", "eos"))
    with read_by_library(path, "cannot build its tokenizer"):
        tokenizer = gguf_tokenizer(fields, path)
    return GGUFTokenizer(tokenizer, None if bos is None else int(bos), None if eos is None else int(eos),
                         *gguf_special_flags(fields, path))


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF of the ``smollm2`` asset; a UsageError naming ``kexue fetch smollm2``
    when it has not been fetched."""
    from kexue.assets import asset_path

    return asset_path("smollm2")


def load_smollm2() -> tuple[CausalLM, Tokenizer]:
    """SmolLM2-135M-Instruct (Q4_1, dequantised to float32) and its tokenizer from the ``smollm2`` asset."""
    return load_gguf(smollm2_path())


__all__ = ["GGUFTokenizer", "gguf_config", "gguf_key_map", "gguf_special_flags", "gguf_tokenizer", "load_gguf",
           "load_gguf_tokenizer", "load_smollm2", "read_gguf", "smollm2_path"]
