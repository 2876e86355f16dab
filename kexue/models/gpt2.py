"""GPT-2 (Hugging Face folders) and GPT2_ML (imcaspar/gpt2-ml, the Chinese "GPT-2") as :class:`CausalLM` s.

Posts: 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292); 从语言模型到Seq2Seq (https://kexue.fm/archives/6933)
for the causal mask.

GPT-2 is the stack's pre-LN layout: ``x + attn(LN₁ x)``, ``x + mlp(LN₂ x)``, a final LN, learned positions, tanh-GELU,
the output matrix tied to the token embedding. Its ``Conv1D`` weights are stored ``(in, out)``, so they are transposed.

GPT2_ML (bert4keras' ``GPT2_ML`` class, after Grover's code) is closer to the original GPT: an embedding LayerNorm,
then per block ``a = x + attn(x)``, ``x' = LN₁(a + mlp(LN₀ a))`` with erf-GELU and ``eps = 1e-5``, no final norm.
:class:`kexue.nn.TransformerConfig` cannot say "no norm around attention, norms both before and after the
feed-forward", so :class:`GPT2ML` swaps its own :class:`GPT2MLBlock` into the stack.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import Tensor, nn

from kexue.models.bert import activation
from kexue.models.causal_lm import CausalLM
from kexue.models.checkpoints import CheckpointError, KeyMap, assign, built_from, read_config, read_state, weights_file
from kexue.nn.attention import KVCache, MultiHeadAttention
from kexue.nn.transformer import FeedForward, TransformerConfig


def load_gpt2(path: str | Path) -> CausalLM:
    """A Hugging Face GPT-2 folder (``GPT2LMHeadModel`` or ``GPT2Model`` weights, ``model.safetensors`` or
    ``pytorch_model.bin``) as a :class:`CausalLM`, every tensor copied by :func:`gpt2_key_map` with its shape checked.

    ``config.json`` keys read: ``vocab_size``, ``n_embd``, ``n_layer``, ``n_head``, ``n_positions``, ``n_inner``,
    ``activation_function``, ``layer_norm_epsilon``, ``tie_word_embeddings``.
    """
    sizes = dict.fromkeys(("vocab_size", "n_embd", "n_layer", "n_head", "n_positions"), int)
    config = read_config(path, required=sizes, optional={
        "n_inner": int, "layer_norm_epsilon": float, "resid_pdrop": float, "attn_pdrop": float,
        "activation_function": str, "tie_word_embeddings": bool})
    state, origin, where = read_state(path), str(weights_file(path)), Path(path) / "config.json"
    for flag, value in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                        ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if config.get(flag, value) != value:
            raise CheckpointError(f"{flag}={config[flag]!r} is not supported (only {value!r})", where)
    with built_from(where):
        stack = TransformerConfig(
            dim=config["n_embd"], num_layers=config["n_layer"], num_heads=config["n_head"],
            ffn_dim=config.get("n_inner") or 4 * config["n_embd"],
            activation=activation(config, "activation_function", str(where), "gelu_new"),
            eps=config.get("layer_norm_epsilon", 1e-5),
            dropout=config.get("resid_pdrop", 0.1), attention_dropout=config.get("attn_pdrop", 0.1),
            positions="learned", max_length=config["n_positions"], prenorm=True, final_norm=True)
    tied = config.get("tie_word_embeddings", True)
    model = CausalLM(config["vocab_size"], stack, tie_embeddings=tied)
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    state = {k: v.t() if k.endswith(conv1d) else v for k, v in state.items()}  # Conv1D (in, out) -> Linear (out, in)
    ignore = [r"\.attn\.(masked_)?bias$"] + ([r"^lm_head\.weight$"] if tied else [])
    assign(model, state, gpt2_key_map(stack.num_layers, tied), ignore, origin)
    return model


def gpt2_key_map(num_layers: int, tied: bool = True) -> KeyMap:
    """``{our CausalLM key: GPT-2 key}`` (GPT-2 keys without the ``transformer.`` prefix, Conv1D weights already
    transposed; ``c_attn``'s output columns are ordered q, k, v like our fused ``qkv``)."""
    keys = {"embed.weight": "wte.weight", "transformer.positions.embedding.weight": "wpe.weight"}
    for part in ("weight", "bias"):
        keys[f"transformer.final_norm.{part}"] = f"ln_f.{part}"
        for i in range(num_layers):
            ours, theirs = f"transformer.layers.{i}.", f"h.{i}."
            keys |= {f"{ours}attn_norm.{part}": f"{theirs}ln_1.{part}",
                     f"{ours}attn.qkv.{part}": f"{theirs}attn.c_attn.{part}",
                     f"{ours}attn.out.{part}": f"{theirs}attn.c_proj.{part}",
                     f"{ours}ffn_norm.{part}": f"{theirs}ln_2.{part}",
                     f"{ours}ffn.up.{part}": f"{theirs}mlp.c_fc.{part}",
                     f"{ours}ffn.down.{part}": f"{theirs}mlp.c_proj.{part}"}
    if not tied:
        keys["lm_head.weight"] = "lm_head.weight"
    return keys


class GPT2MLBlock(nn.Module):
    """One GPT2_ML block, ``(B, T, D)`` -> ``(B, T, D)``: ``a = x + attn(x)``; ``out_norm(a + ffn(ffn_norm(a)))``.
    Called by :class:`kexue.nn.Transformer` like a :class:`kexue.nn.TransformerBlock` (causal attention always)."""

    def __init__(self, config: TransformerConfig, layer: int = 0) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(config.dim, config.num_heads, bias=True, dropout=config.attention_dropout,
                                       layer=layer)
        self.ffn_norm = nn.LayerNorm(config.dim, eps=config.eps)
        self.ffn = FeedForward(config.dim, config.ffn_dim or 4 * config.dim, config.activation)
        self.out_norm = nn.LayerNorm(config.dim, eps=config.eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None,
                context: Tensor | None = None, context_mask: Tensor | None = None,
                condition: Tensor | None = None, cache: KVCache | None = None,
                positions: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.attn(x, mask=mask, bias=bias, causal=True, cache=cache))  # (B, T, D)
        return self.out_norm(x + self.drop(self.ffn(self.ffn_norm(x))))  # (B, T, D)


class GPT2ML(CausalLM):
    """GPT2_ML: a :class:`CausalLM` with an embedding LayerNorm, no final norm, and :class:`GPT2MLBlock` s.

    Args:
        vocab_size: ``V`` (bert-base-chinese's WordPiece vocabulary in the released model).
        config: ``dim``, ``num_layers``, ``num_heads``, ``ffn_dim``, ``activation``, ``eps``, ``max_length``,
            dropouts; the layout fields are forced (learned positions, embedding norm, no final norm).
    """

    def __init__(self, vocab_size: int, config: TransformerConfig | dict = TransformerConfig()) -> None:  # noqa: B008
        config = replace(TransformerConfig.coerce(config), positions="learned", embedding_norm=True, prenorm=False,
                         final_norm=False, bias=True)
        super().__init__(vocab_size, config, tie_embeddings=True)
        self.transformer.layers = nn.ModuleList(GPT2MLBlock(self.config, i) for i in range(config.num_layers))


def load_gpt2_ml(path: str | Path) -> GPT2ML:
    """GPT2_ML weights from a folder of tensors (reading the TensorFlow checkpoint itself would need TensorFlow).

    Expected layout of ``path``:

    - ``config.json``: gpt2-ml's own config (``configs/mega.json``): ``vocab_size``, ``hidden_size``,
      ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``,
      ``hidden_act`` (``"gelu"``: erf); optional ``layer_norm_eps`` (default 1e-5, Grover's).
    - ``model.safetensors``: the checkpoint's variables under their TensorFlow names, dense kernels ``(in, out)`` as
      TensorFlow stores them — ``newslm/embeddings/word_embed`` ``(V, D)``, ``newslm/embeddings/pos_embed``
      ``(P, D)``, ``newslm/embeddings/LayerNorm_embed_norm/{gamma,beta}``, and per layer ``newslm/layer{i:02d}/``
      ``{query,key,value,context_projection}_layer/{kernel,bias}``, ``LayerNorm_mlp_ln0/{gamma,beta}``,
      ``intermediate/{kernel,bias}``, ``output/{kernel,bias}``, ``LayerNorm_mlp_ln1/{gamma,beta}``. Other variables
      (optimizer slots, ``global_step``) are ignored. One-off conversion where TensorFlow is installed::

          reader = tf.train.load_checkpoint("model.ckpt-100000")
          names = [n for n in reader.get_variable_to_shape_map() if n.startswith("newslm/")]
          safetensors.numpy.save_file({n: reader.get_tensor(n) for n in names}, "model.safetensors")
    """
    config = read_config(path, required=dict.fromkeys(("vocab_size", "hidden_size", "num_hidden_layers",
                                                       "num_attention_heads", "max_position_embeddings"), int),
                         optional={"intermediate_size": int, "layer_norm_eps": float, "hidden_dropout_prob": float,
                                   "attention_probs_dropout_prob": float, "hidden_act": str})
    state, origin, where = read_state(path), str(weights_file(path)), Path(path) / "config.json"
    with built_from(where):
        stack = TransformerConfig(
            dim=config["hidden_size"], num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            ffn_dim=config.get("intermediate_size") or 4 * config["hidden_size"],
            activation=activation(config, "hidden_act", str(where)), eps=config.get("layer_norm_eps", 1e-5),
            dropout=config.get("hidden_dropout_prob", 0.1),
            attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
            max_length=config["max_position_embeddings"])
    model = GPT2ML(config["vocab_size"], stack)
    kernels = ("_layer/kernel", "intermediate/kernel", "output/kernel")
    state = {k: v.t() if k.endswith(kernels) else v for k, v in state.items()}  # TF (in, out) -> Linear (out, in)
    ignore = [r"^(?!newslm/)", r"/(adafactor_v[rc]?|Adam(_1)?|Momentum)$"]
    assign(model, state, gpt2_ml_key_map(stack.num_layers), ignore, origin)
    return model


def gpt2_ml_key_map(num_layers: int) -> KeyMap:
    """``{our GPT2ML key: GPT2_ML TensorFlow variable}`` (bert4keras' ``GPT2_ML.variable_mapping``); kernels already
    transposed to ``(out, in)``; our fused ``qkv`` is ``query_layer``, ``key_layer``, ``value_layer`` stacked."""
    e = "newslm/embeddings/"
    keys = {"embed.weight": f"{e}word_embed", "transformer.positions.embedding.weight": f"{e}pos_embed",
            "transformer.embedding_norm.weight": f"{e}LayerNorm_embed_norm/gamma",
            "transformer.embedding_norm.bias": f"{e}LayerNorm_embed_norm/beta"}
    for i in range(num_layers):
        ours, theirs = f"transformer.layers.{i}.", f"newslm/layer{i:02d}/"
        for part, tf in (("weight", "kernel"), ("bias", "bias")):
            keys |= {f"{ours}attn.qkv.{part}": tuple(f"{theirs}{n}_layer/{tf}" for n in ("query", "key", "value")),
                     f"{ours}attn.out.{part}": f"{theirs}context_projection_layer/{tf}",
                     f"{ours}ffn.up.{part}": f"{theirs}intermediate/{tf}",
                     f"{ours}ffn.down.{part}": f"{theirs}output/{tf}"}
        for part, tf in (("weight", "gamma"), ("bias", "beta")):
            keys |= {f"{ours}ffn_norm.{part}": f"{theirs}LayerNorm_mlp_ln0/{tf}",
                     f"{ours}out_norm.{part}": f"{theirs}LayerNorm_mlp_ln1/{tf}"}
    return keys


__all__ = ["GPT2ML", "GPT2MLBlock", "gpt2_key_map", "gpt2_ml_key_map", "load_gpt2", "load_gpt2_ml"]
