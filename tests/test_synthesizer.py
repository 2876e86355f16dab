"""Synthesizer attention (kexue.fm/archives/7430) against loops written from the paper's formulas and against
``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kexue.nn.attention import KVCache
from kexue.nn.synthesizer import SynthesizerAttention, synthesized_attention

KINDS = ["dense", "random", "factorized_dense", "factorized_random", "dense+dot", "random+dot",
         "factorized_random+dot", "dense+random"]
D, H, L, T, B = 8, 2, 6, 4, 2


def make(kind: str, **kwargs) -> SynthesizerAttention:
    torch.manual_seed(0)
    return SynthesizerAttention(D, H, L, kind=kind, rank=kwargs.pop("rank", 2), **kwargs).eval()


def x_input(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed))


def heads_then_out(m: SynthesizerAttention, x: torch.Tensor, score) -> torch.Tensor:
    """Loop over examples, heads and queries: softmax of ``score(b, h, t)`` (a row over the T keys) @ values."""
    Dh = D // H
    v = x @ m.v.weight.T + m.v.bias  # (B, T, D)
    y = torch.zeros(B, T, D)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                w = torch.softmax(score(b, h, t), dim=0)  # (T,)
                y[b, t, h * Dh:(h + 1) * Dh] = sum(w[j] * v[b, j, h * Dh:(h + 1) * Dh] for j in range(T))
    return y @ m.out.weight.T + m.out.bias


def dense_row(dense, x: torch.Tensor, b: int, h: int, t: int) -> torch.Tensor:
    """``W2_h relu(W1 x_t + b1)_h + b2_h`` for one position: the head's slice of the hidden layer."""
    Dh = D // H
    hidden = torch.relu(dense.hidden.weight @ x[b, t] + dense.hidden.bias)  # (D,)
    return hidden[h * Dh:(h + 1) * Dh] @ dense.weight[h] + dense.bias[h, 0]  # (N,)


def test_random_equals_loop():
    m, x = make("random"), x_input()
    with torch.no_grad():
        assert torch.allclose(m(x), heads_then_out(m, x, lambda b, h, t: m.random[h, t, :T]), atol=1e-5)


def test_dense_equals_hand_computation():
    m, x = make("dense"), x_input()
    with torch.no_grad():
        want = heads_then_out(m, x, lambda b, h, t: dense_row(m.dense, x, b, h, t)[:T])
        assert torch.allclose(m(x), want, atol=1e-5)


def test_factorized_dense_is_outer_product():
    m, x = make("factorized_dense", rank=2), x_input()  # a = 2, b = 3, a b = L = 6

    def row(b, h, t):
        fa, fb = dense_row(m.factorized_dense, x, b, h, t).split([2, 3])
        return torch.stack([fa[j % 2] * fb[j // 2] for j in range(L)])[:T]

    with torch.no_grad():
        assert torch.allclose(m(x), heads_then_out(m, x, row), atol=1e-5)


def test_factorized_random_equals_random_with_product_table():
    fact, rand, x = make("factorized_random", rank=3), make("random"), x_input()
    with torch.no_grad():
        rand.v.load_state_dict(fact.v.state_dict())
        rand.out.load_state_dict(fact.out.state_dict())
        rand.random.copy_(fact.random_left @ fact.random_right.transpose(1, 2))
        assert torch.allclose(fact(x), rand(x), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_causal_output_ignores_the_future(kind):
    m, x = make(kind), x_input()
    t = 1
    x2 = x.clone()
    x2[:, t + 1:] += torch.randn(B, T - t - 1, D)
    with torch.no_grad():
        y, y2 = m(x, causal=True), m(x2, causal=True)
    assert torch.allclose(y[:, :t + 1], y2[:, :t + 1], atol=1e-6)
    assert not torch.allclose(y[:, t + 1:], y2[:, t + 1:], atol=1e-3)  # the perturbation does reach the future


@pytest.mark.parametrize("kind", KINDS)
def test_padded_keys_get_no_weight(kind):
    m, x = make(kind), x_input()
    valid = torch.tensor([[True] * T, [True, True, False, False]])  # (B, S)
    mask = valid[:, None, None, :]  # (B, 1, 1, S)
    x2 = x.clone()
    x2[1, 2:] += torch.randn(2, D)
    with torch.no_grad():
        y, y2 = m(x, mask=mask), m(x2, mask=mask)
        unmasked = m(x2)
    assert torch.allclose(y[:, :2], y2[:, :2], atol=1e-6) and torch.allclose(y[0], y2[0], atol=1e-6)
    assert not torch.allclose(y[1, :2], unmasked[1, :2], atol=1e-3)  # without the mask the padding leaks in


def test_fully_masked_rows_are_finite():
    m, x = make("dense+dot"), x_input()
    mask = torch.zeros(B, 1, 1, T, dtype=torch.bool)
    assert torch.isfinite(m(x, mask=mask, bias=torch.zeros(1, H, T, T))).all()


@pytest.mark.parametrize("kind", ["random", "factorized_random"])
def test_fixed_random_table_is_a_buffer_in_the_checkpoint(kind):
    fixed, trained = make(kind, trainable=False), make(kind)
    names = {"random"} if kind == "random" else {"random_left", "random_right"}
    assert names.isdisjoint(dict(fixed.named_parameters())) and names <= set(fixed.state_dict())
    assert names <= set(dict(trained.named_parameters()))
    torch.manual_seed(123)
    other = SynthesizerAttention(D, H, L, kind=kind, rank=2, trainable=False).eval()
    x = x_input()
    assert not torch.allclose(other(x), fixed(x))
    other.load_state_dict(fixed.state_dict())
    fixed(x).sum().backward()
    assert all(getattr(fixed, n).grad is None and not getattr(fixed, n).requires_grad for n in names)
    with torch.no_grad():
        assert torch.equal(other(x), fixed(x))


def test_dense_plus_dot_with_dense_weight_zero_is_dot_product_attention():
    m, x = make("dense+dot"), x_input()
    assert torch.allclose(m.mixture_weights(), torch.tensor([0.5, 0.5]))
    with torch.no_grad():
        m.mix.copy_(torch.tensor([-math.inf, 0.0]))
        q, k = (x @ m.qk.weight.T + m.qk.bias).chunk(2, dim=-1)  # (B, T, D) each
        v = x @ m.v.weight.T + m.v.bias
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
        mask = torch.tensor([[True] * T, [True, True, True, False]])[:, None, None, :]  # (B, 1, 1, S)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Dh)
        want = y.transpose(1, 2).reshape(B, T, D) @ m.out.weight.T + m.out.bias
        assert torch.allclose(m(x, mask=mask), want, atol=1e-5)


def test_mixture_is_weighted_sum_of_scores_before_softmax():
    m, x = make("dense+random"), x_input()
    with torch.no_grad():
        m.mix.copy_(torch.tensor([0.3, -0.2]))
        alpha = torch.softmax(torch.tensor([0.3, -0.2]), 0)
        dense = torch.stack([torch.stack([torch.stack([dense_row(m.dense, x, b, h, t)[:T] for t in range(T)])
                                          for h in range(H)]) for b in range(B)])  # (B, H, T, T)
        assert torch.allclose(m.scores(x), alpha[0] * dense + alpha[1] * m.random[:, :T, :T], atol=1e-5)


def test_functional_equals_sdpa_with_mask_bias_and_causal():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(B, H, T, 3, generator=g) for _ in range(3))
    mask = torch.rand(B, 1, T, T, generator=g) > 0.3
    bias = torch.randn(1, H, T, T, generator=g)
    got = synthesized_attention(q @ k.transpose(-2, -1) / math.sqrt(3), v, mask=mask, bias=bias, causal=True)
    lower = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = mask & lower
    allowed = allowed | ~allowed.any(-1, keepdim=True)  # rows with no key attend to all, as attention_mask
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(~allowed, -math.inf))
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS + ["factorized_dense+dot"])
def test_gradients_reach_every_parameter(kind):
    m = make(kind).train()
    m(x_input(), mask=torch.ones(B, 1, 1, T, dtype=torch.bool), causal=True).pow(2).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_parameter_counts():
    m = SynthesizerAttention(64, 4, 128, kind="dense")
    # hidden 64x64+64, per-head W2 4x16x128 + b2 4x128, v and out 2 x (64x64+64)
    assert sum(p.numel() for p in m.parameters()) == 4160 + 8192 + 512 + 2 * 4160


@pytest.mark.parametrize(("build", "call", "words"), [
    (dict(dim=8, num_heads=3, max_length=6), None, ["num_heads=3", "dim=8"]),
    (dict(dim=8, num_heads=2, max_length=6, kind="dot"), None, ["'dot'"]),
    (dict(dim=8, num_heads=2, max_length=6, kind="dense+dense"), None, ["'dense+dense'"]),
    (dict(dim=8, num_heads=2, max_length=6, kind="linear"), None, ["'linear'"]),
    (dict(dim=8, num_heads=2, max_length=6, kind="factorized_dense", rank=4), None, ["rank=4", "max_length=6"]),
    (dict(dim=8, num_heads=2, max_length=3), dict(x=torch.zeros(2, 4, 8)), ["(2, 4, 8)", "T=4", "max_length=3"]),
    (dict(dim=8, num_heads=2, max_length=6), dict(x=torch.zeros(2, 4, 6)), ["(2, 4, 6)", "dim=8"]),
    (dict(dim=8, num_heads=2, max_length=6), dict(x=torch.zeros(2, 4, 8), mask=torch.ones(2, 1, 1, 5, dtype=torch.bool)),
     ["(2, 1, 1, 5)", "(2, 2, 4, 4)"]),
    (dict(dim=8, num_heads=2, max_length=6), dict(x=torch.zeros(2, 4, 8), bias=torch.zeros(3, 2, 4, 4)),
     ["(3, 2, 4, 4)", "(2, 2, 4, 4)"]),
    (dict(dim=8, num_heads=2, max_length=6), dict(x=torch.zeros(2, 4, 8), context=torch.zeros(2, 5, 8)),
     ["(2, 5, 8)", "(2, 4, 8)"]),
    (dict(dim=8, num_heads=2, max_length=6), dict(x=torch.zeros(2, 4, 8), cache=KVCache(1)),
     ["cannot decode incrementally"]),
])
def test_bad_inputs_raise_value_error(build, call, words):
    with pytest.raises(ValueError) as info:
        SynthesizerAttention(**build)(**(call or {}))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_functional_bad_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2, 4, 5\).*\(2, 2, 4, 3\)"):
        synthesized_attention(torch.zeros(2, 2, 4, 5), torch.zeros(2, 2, 4, 3))
