"""Transformer blocks against independent references: torch.nn.MultiheadAttention / TransformerEncoderLayer /
TransformerDecoderLayer with the same weights, brute-force softmax attention, hand-written masks, the post's
formulas (kexue.fm/archives/4765, /6933, /7124)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kexue.nn import (
    CharTransformerEncoder,
    ConditionalLayerNorm,
    MultiHeadAttention,
    RotaryEmbedding,
    Transformer,
    TransformerConfig,
    TransformerEncoder,
    causal_mask,
    scaled_dot_product_attention,
    seq2seq_mask,
    sinusoidal_positions,
)

from .conftest import assert_one_line_error, kexue

B, T, D, H = 3, 6, 16, 4


def reference_attention(q, k, v, mask=None, bias=None):  # noqa: ANN001, ANN201
    """softmax(q kᵀ / √d + bias, masked) v with plain ops; k/v heads repeated for grouped queries."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def mha_pair(seed: int = 0) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    ours, theirs = MultiHeadAttention(D, H), nn.MultiheadAttention(D, H, batch_first=True)
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.in_proj_weight)
        ours.qkv.bias.copy_(torch.randn(3 * D) * 0.1)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        ours.out.weight.copy_(theirs.out_proj.weight)
        ours.out.bias.copy_(torch.randn(D) * 0.1)
        theirs.out_proj.bias.copy_(ours.out.bias)
    return ours.eval(), theirs.eval()


def test_attention_equals_torch_multihead_attention_with_and_without_masks() -> None:
    ours, theirs = mha_pair()
    x = torch.randn(B, T, D)
    lengths = torch.tensor([6, 4, 1])
    valid = torch.arange(T)[None] < lengths[:, None]  # (B, T)
    causal = causal_mask(T)
    for mask, kpm, attn in [(None, None, None), (valid[:, None, None], ~valid, None), (causal, None, ~causal),
                            (valid[:, None, None] & causal, ~valid, ~causal)]:
        expected = theirs(x, x, x, key_padding_mask=kpm, attn_mask=attn, need_weights=False)[0]
        got = ours(x, mask=mask)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x, causal=True), theirs(x, x, x, attn_mask=~causal, need_weights=False)[0],
                               atol=1e-5, rtol=1e-5)


def test_functional_attention_grouped_queries_bias_and_mask_equal_brute_force() -> None:
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 6, 5, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 3)
    bias, mask = torch.randn(1, 6, 5, 7), torch.rand(2, 1, 5, 7) > 0.3
    mask[..., 0] = True
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask, bias), reference_attention(q, k, v, mask,
                                                                                                      bias))
    # causal with S > T (cached keys): query i sees keys 0 .. i + S - T
    lower = torch.ones(5, 7, dtype=torch.bool).tril(2)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, causal=True), reference_attention(q, k, v, lower))


def test_fully_masked_rows_stay_finite() -> None:
    q = torch.randn(1, 1, 2, 4, requires_grad=True)
    out = scaled_dot_product_attention(q, torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4),
                                       torch.zeros(1, 1, 1, 3, dtype=torch.bool))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q.grad).all()


def test_kv_cache_decoding_equals_the_full_causal_pass() -> None:
    torch.manual_seed(2)
    for positions in ("learned", "rotary", "sinusoidal"):
        stack = Transformer(TransformerConfig(dim=D, num_heads=H, num_kv_heads=2, num_layers=2, dropout=0.0,
                                              causal=True, positions=positions, max_length=16)).eval()
        x = torch.randn(2, 7, D)
        full = stack(x)
        cache = stack.new_cache()
        steps = [stack(x[:, :3], cache=cache)] + [stack(x[:, t:t + 1], cache=cache) for t in range(3, 7)]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
        assert cache.length == 7
        cache.reorder(torch.tensor([1, 1]))
        assert torch.equal(cache.layers[0][0][0], cache.layers[0][0][1])


def test_sinusoidal_positions_follow_the_post_formula() -> None:
    pe = sinusoidal_positions(10, 6)
    for p in range(10):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("interleaved", [False, True])
def test_rotary_scores_depend_on_relative_position_only(interleaved: bool) -> None:
    rope = RotaryEmbedding(8, interleaved=interleaved)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq: int, pk: int) -> float:
        return (rope(q, torch.tensor([pq])) * rope(k, torch.tensor([pk]))).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)
    torch.testing.assert_close(rope(q, torch.tensor([0])), q)  # position 0 is the identity
    # the two layouts are the same rotation up to a permutation of the columns
    perm = torch.arange(8).view(2, 4).t().flatten()  # halves -> interleaved: [0, 4, 1, 5, ...]
    half, inter = RotaryEmbedding(8), RotaryEmbedding(8, interleaved=True)
    torch.testing.assert_close(inter(q[..., perm], torch.tensor([7])), half(q, torch.tensor([7]))[..., perm])


def test_masks_equal_hand_written_matrices() -> None:
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert causal_mask(2, past=2).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    # UniLM: source = 3 tokens, target = 2; source sees source, target sees source + its own prefix
    got = seq2seq_mask(torch.tensor([[0, 0, 0, 1, 1]]))[0, 0].int().tolist()
    assert got == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert seq2seq_mask(torch.zeros(1, 3, dtype=torch.long)).all()
    assert torch.equal(seq2seq_mask(torch.ones(1, 4, dtype=torch.long))[0, 0], causal_mask(4))


def test_conditional_layer_norm_starts_as_layer_norm_and_shifts_gain_and_bias() -> None:
    torch.manual_seed(3)
    cln, ln = ConditionalLayerNorm(D, 5, hidden_dim=4), nn.LayerNorm(D)
    x, c = torch.randn(2, T, D), torch.randn(2, 5)
    assert torch.equal(cln(x, c), ln(x))  # zero-initialised projections: exactly LayerNorm
    with torch.no_grad():
        for p in cln.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    gamma = cln.weight + cln.to_gamma(cln.hidden(c))[:, None]  # (2, 1, D)
    beta = cln.bias + cln.to_beta(cln.hidden(c))[:, None]
    normed = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(cln(x, c), normed * gamma + beta)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 6, 16\)"):
        cln(x, torch.randn(2, 4))


def copy_layer(block: nn.Module, layer: nn.Module, decoder: bool = False) -> None:
    with torch.no_grad():
        block.attn.qkv.weight.copy_(layer.self_attn.in_proj_weight)
        block.attn.qkv.bias.copy_(layer.self_attn.in_proj_bias)
        block.attn.out.load_state_dict(layer.self_attn.out_proj.state_dict())
        block.ffn.up.load_state_dict(layer.linear1.state_dict())
        block.ffn.down.load_state_dict(layer.linear2.state_dict())
        block.attn_norm.load_state_dict(layer.norm1.state_dict())
        block.ffn_norm.load_state_dict((layer.norm3 if decoder else layer.norm2).state_dict())
        if decoder:
            block.cross.q.weight.copy_(layer.multihead_attn.in_proj_weight[:D])
            block.cross.q.bias.copy_(layer.multihead_attn.in_proj_bias[:D])
            block.cross.kv.weight.copy_(layer.multihead_attn.in_proj_weight[D:])
            block.cross.kv.bias.copy_(layer.multihead_attn.in_proj_bias[D:])
            block.cross.out.load_state_dict(layer.multihead_attn.out_proj.state_dict())
            block.cross_norm.load_state_dict(layer.norm2.state_dict())


@pytest.mark.parametrize("prenorm", [False, True])
def test_encoder_and_decoder_blocks_equal_torch_transformer_layers(prenorm: bool) -> None:
    torch.manual_seed(4)
    config = TransformerConfig(dim=D, num_heads=H, num_layers=1, ffn_dim=24, prenorm=prenorm, final_norm=False,
                               dropout=0.0, positions="none")
    ours = Transformer(config).eval()
    theirs = nn.TransformerEncoderLayer(D, H, 24, dropout=0.0, activation="gelu", batch_first=True,
                                        norm_first=prenorm).eval()
    copy_layer(ours.layers[0], theirs)
    x, valid = torch.randn(B, T, D), torch.arange(T)[None] < torch.tensor([[6], [3], [5]])
    torch.testing.assert_close(ours(x, padding=valid)[valid], theirs(x, src_key_padding_mask=~valid)[valid],
                               atol=1e-5, rtol=1e-5)

    dec = Transformer(TransformerConfig(**{**config.__dict__, "causal": True, "cross_attention": True})).eval()
    ref = nn.TransformerDecoderLayer(D, H, 24, dropout=0.0, activation="gelu", batch_first=True,
                                     norm_first=prenorm).eval()
    copy_layer(dec.layers[0], ref, decoder=True)
    memory = torch.randn(B, 4, D)
    expected = ref(x, memory, tgt_mask=~causal_mask(T), tgt_is_causal=True)
    torch.testing.assert_close(dec(x, context=memory), expected, atol=1e-5, rtol=1e-5)


def test_stack_is_causal_and_padding_never_leaks() -> None:
    torch.manual_seed(5)
    for attention in ("dot", "dense+dot"):
        stack = Transformer(TransformerConfig(dim=D, num_heads=H, causal=True, dropout=0.0, attention=attention,
                                              max_length=T)).eval()
        x = torch.randn(1, T, D)
        y = x.clone()
        y[:, 4:] += 1.0
        torch.testing.assert_close(stack(x)[:, :4], stack(y)[:, :4])
    encoder = TransformerEncoder(50, TransformerConfig(dim=D, num_heads=H, dropout=0.0)).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    torch.testing.assert_close(encoder(ids), encoder(ids[:, :3]))  # padding changes nothing


def test_swiglu_rmsnorm_no_bias_config_builds_a_llama_block() -> None:
    config = TransformerConfig(dim=D, num_heads=H, num_kv_heads=1, activation="swiglu", norm="rmsnorm", bias=False,
                               positions="rotary", causal=True)
    stack = Transformer(config)
    block = stack.layers[0]
    assert isinstance(block.attn_norm, nn.RMSNorm) and block.ffn.gate is not None and block.attn.qkv.bias is None
    assert block.attn.qkv.weight.shape == ((H + 2) * D // H, D)  # 4 query heads, 1 key and 1 value head
    x = torch.randn(2, 3, D)
    torch.testing.assert_close(block.ffn(x), block.ffn.down(F.silu(block.ffn.gate(x)) * block.ffn.up(x)))
    assert stack(x).shape == (2, 3, D)


def test_bad_shapes_name_both_shapes() -> None:
    with pytest.raises(ValueError, match="num_heads=3 does not divide the width dim=16"):
        TransformerConfig(dim=16, num_heads=3)
    with pytest.raises(ValueError, match="num_heads=3 does not divide the width dim=16"):
        MultiHeadAttention(16, 3)
    attention = MultiHeadAttention(D, H)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 1, 1, 5\).*\(3, 4, 6, 6\)"):
        attention(torch.randn(B, T, D), mask=torch.ones(2, 1, 1, 5, dtype=torch.bool))
    stack = Transformer(TransformerConfig(dim=D, num_heads=H))
    with pytest.raises(ValueError, match=r"padding of shape \(3, 5\).*\(3, 6, 16\)"):
        stack(torch.randn(B, T, D), padding=torch.ones(B, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 6, 8\).*dim=16"):
        stack(torch.randn(B, T, 8))
    cond = Transformer(TransformerConfig(dim=D, num_heads=H, condition_dim=4))
    with pytest.raises(ValueError, match=r"condition of shape \(3, 5\)"):
        cond(torch.randn(B, T, D), condition=torch.randn(B, 5))


def test_cli_heads_that_do_not_divide_the_width_are_one_line() -> None:
    proc = kexue("fit", "sentiment", "--model.encoder", "kexue.nn.TransformerEncoder",
                 "--model.encoder.config.num_heads", "3", "--trainer.fast_dev_run", "true", "--logger", "none")
    assert_one_line_error(proc, "num_heads=3 does not divide the width dim=128")


@pytest.mark.parametrize("task, preset, encoder", [
    ("sentiment", "transformer", "kexue.nn.TransformerEncoder"),
    ("cws", "char_transformer", "kexue.nn.CharTransformerEncoder"),
])
def test_transformer_presets_train_and_their_checkpoint_predicts(task: str, preset: str, encoder: str,
                                                                 tmp_path: Path) -> None:
    small = ["--model.encoder.config.dim", "16", "--model.encoder.config.num_layers", "1",
             "--model.encoder.config.attention", "dense+dot", "--data.tokenizer.num_buckets", "4096"]
    fit = kexue("fit", task, "--config", preset, *small, "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--logger", "none",
                "--trainer.enable_progress_bar", "false")
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = next(tmp_path.glob(f"runs/{task}/*/checkpoints/*.ckpt"))
    saved = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert saved["encoder"]["class_path"] == encoder and saved["lr"] == 0.001
    config = saved["encoder"]["init_args"]["config"]
    assert (config["dim"], config["num_heads"], config["attention"]) == (16, 4, "dense+dot")
    texts = tmp_path / "texts.txt"
    texts.write_text("很好用，推荐\n太烂了\n", encoding="utf-8")
    pred = kexue("predict", task, "--ckpt_path", str(ckpt), "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert len(pred.stdout.strip().splitlines()) >= 2


def test_char_transformer_encoder_shapes() -> None:
    enc = CharTransformerEncoder(100, 3, 8, 0.0, TransformerConfig(dim=D, num_heads=H, dropout=0.0)).eval()
    ids, mask = torch.randint(1, 100, (2, 5, 3)), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    out = enc(ids, mask)
    assert out.shape == (2, 5, D) and enc.output_dim == D
    torch.testing.assert_close(out[1, :2], enc(ids[1:, :2], mask[1:, :2])[0])
