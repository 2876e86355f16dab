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
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from kexue.errors import UsageError, one_line
from kexue.models.causal_lm import CausalLM
from kexue.nn.transformer import TransformerConfig

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) for byte-level BPE -> whether each digit is split off
# first (its "\p{N}" rule, SmolLM2's own tokenizer.json `Digits(individual_digits=True)`) before the GPT-2 split.
BYTE_LEVEL_PRE = {"gpt2": False, "default": False, "smollm": True, "starcoder": True, "refact": True}
GGUF_CONTROL, GGUF_USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values


def _field(fields: dict, key: str, path: Path, default: Any = ...) -> Any:  # noqa: ANN401 (GGUF values vary)
    """The value of metadata ``key`` (a number, string or list), or a UsageError naming it."""
    if key not in fields:
        if default is ...:
            raise UsageError(f"GGUF metadata has no {key!r}", path)
        return default
    return fields[key].contents()


def gguf_config(fields: dict, path: Path, vocab_size: int = 0) -> tuple[TransformerConfig, int]:
    """The :class:`TransformerConfig` and vocabulary size a Llama GGUF's metadata describes (``vocab_size``: the
    fallback when neither ``llama.vocab_size`` nor the token list gives it)."""
    arch = _field(fields, "general.architecture", path)
    if arch != "llama":
        raise UsageError(f"general.architecture is {arch!r}; only 'llama' GGUF files load into CausalLM", path)
    dim = int(_field(fields, "llama.embedding_length", path))
    heads = int(_field(fields, "llama.attention.head_count", path))
    head_dim = int(_field(fields, "llama.attention.key_length", path, dim // heads))
    rotary_dim = int(_field(fields, "llama.rope.dimension_count", path, head_dim))
    if rotary_dim != head_dim:
        raise UsageError(f"llama.rope.dimension_count={rotary_dim} rotates part of each head (head_dim={head_dim}); "
                         "CausalLM rotates whole heads", path)
    scaling = _field(fields, "llama.rope.scaling.type", path, "none")
    if scaling not in ("none", ""):
        raise UsageError(f"llama.rope.scaling.type={scaling!r} is not supported (plain rotary only)", path)
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


def gguf_key_map(num_layers: int, tied: bool) -> dict[str, list[str]]:
    """Our state-dict key -> the GGUF tensors whose rows, stacked in order, make it (q, k, v for the fused
    ``qkv``; one tensor for every other key). ``tied``: no ``output.weight``, the head is the embedding."""
    keys = {"embed.weight": ["token_embd.weight"], "transformer.final_norm.weight": ["output_norm.weight"]}
    for i in range(num_layers):
        ours, theirs = f"transformer.layers.{i}", f"blk.{i}"
        keys |= {
            f"{ours}.attn_norm.weight": [f"{theirs}.attn_norm.weight"],
            f"{ours}.attn.qkv.weight": [f"{theirs}.attn_q.weight", f"{theirs}.attn_k.weight",
                                        f"{theirs}.attn_v.weight"],
            f"{ours}.attn.out.weight": [f"{theirs}.attn_output.weight"],
            f"{ours}.ffn_norm.weight": [f"{theirs}.ffn_norm.weight"],
            f"{ours}.ffn.gate.weight": [f"{theirs}.ffn_gate.weight"],
            f"{ours}.ffn.up.weight": [f"{theirs}.ffn_up.weight"],
            f"{ours}.ffn.down.weight": [f"{theirs}.ffn_down.weight"],
        }
    if not tied:
        keys["lm_head.weight"] = ["output.weight"]
    return keys


def gguf_tokenizer(fields: dict, path: Path) -> Tokenizer:
    """A byte-level BPE ``tokenizers.Tokenizer`` from ``tokenizer.ggml.*``: the vocabulary in file order (ids are
    positions), the merges, control tokens as special tokens and user-defined ones as added tokens, the
    pre-tokenizer llama.cpp uses for ``tokenizer.ggml.pre``, and a BOS when ``add_bos_token`` says so."""
    kind, pre = _field(fields, "tokenizer.ggml.model", path), _field(fields, "tokenizer.ggml.pre", path, "default")
    if kind != "gpt2" or pre not in BYTE_LEVEL_PRE:
        raise UsageError(f"tokenizer.ggml.model={kind!r}, tokenizer.ggml.pre={pre!r}: only byte-level BPE "
                         f"('gpt2') with pre-tokenizer {', '.join(BYTE_LEVEL_PRE)} is supported", path)
    tokens = _field(fields, "tokenizer.ggml.tokens", path)
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise UsageError(f"tokenizer.ggml.tokens repeats {len(tokens) - len(vocab)} tokens", path)
    merges = [tuple(m.split(" ")) for m in _field(fields, "tokenizer.ggml.merges", path)]
    if any(len(m) != 2 for m in merges):
        raise UsageError("tokenizer.ggml.merges has an entry that is not two tokens separated by one space", path)
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
    bos = _field(fields, "tokenizer.ggml.bos_token_id", path, None)
    if bos is not None and _field(fields, "tokenizer.ggml.add_bos_token", path, False):
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B", special_tokens=[(tokens[bos], int(bos))])
    return tokenizer


def load_gguf(path: str | os.PathLike) -> tuple[CausalLM, Tokenizer]:
    """A Llama GGUF file as ``(CausalLM in eval mode with float32 weights, tokenizers.Tokenizer)``.

    Raises UsageError (one line) for a file that is not a Llama GGUF, lacks a tensor or metadata key, or holds a
    tensor whose shape is not the one its key needs (both keys and both shapes are named).
    """
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as err:  # missing file, bad magic, truncated
        raise UsageError(f"cannot read as GGUF ({one_line(err)})", path) from err
    tensors = {t.name: t for t in reader.tensors}
    embed_rows = int(tensors["token_embd.weight"].shape[-1]) if "token_embd.weight" in tensors else 0
    config, vocab_size = gguf_config(reader.fields, path, embed_rows)
    if "rope_freqs.weight" in tensors:
        raise UsageError("rope_freqs.weight (Llama 3.1 frequency scaling) is not supported", path)
    tied = "output.weight" not in tensors
    model = CausalLM(vocab_size, config, tie_embeddings=tied)
    params = dict(model.named_parameters(remove_duplicate=False))
    key_map = gguf_key_map(config.num_layers, tied)
    head_dim = config.head_dim or config.dim // config.num_heads
    qkv_rows = [config.num_heads * head_dim] + 2 * [(config.num_kv_heads or config.num_heads) * head_dim]
    if unused := sorted(set(tensors) - {n for names in key_map.values() for n in names}):
        raise UsageError(f"{len(unused)} GGUF tensors have no place in a Llama CausalLM, e.g. {unused[0]!r}", path)
    with torch.no_grad():
        for key, names in key_map.items():
            param, row = params[key], 0
            for name in names:
                if name not in tensors:
                    raise UsageError(f"GGUF tensor {name!r} (for {key}) is missing", path)
                t = tensors[name]
                weight = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
                weight = weight.reshape(tuple(int(n) for n in reversed(t.shape)))  # GGUF lists dims innermost first
                if not weight.flags.writeable:  # an unquantised tensor is a view of the read-only memory map
                    weight = weight.copy()
                rows = qkv_rows[names.index(name)] if len(names) > 1 else param.shape[0]
                want = (rows, *param.shape[1:])
                if weight.shape != want:
                    span = f" rows {row}:{row + rows}" if len(names) > 1 else ""
                    raise UsageError(f"GGUF {name} has shape {weight.shape} but {key}{span} needs {want} "
                                     f"(of {tuple(param.shape)})", path)
                param[row:row + rows].copy_(torch.from_numpy(weight))
                row += rows
    return model.eval(), gguf_tokenizer(reader.fields, path)


def load_smollm2() -> tuple[CausalLM, Tokenizer]:
    """SmolLM2-135M-Instruct (Q4_1, dequantised to float32) and its tokenizer from the ``smollm2`` asset;
    a UsageError naming ``kexue fetch smollm2`` when it has not been fetched."""
    from kexue.assets import asset_path

    return load_gguf(asset_path("smollm2"))


__all__ = ["gguf_config", "gguf_key_map", "gguf_tokenizer", "load_gguf", "load_smollm2"]
