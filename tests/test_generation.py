"""Decoding (kexue/generation.py, kexue.fm/archives/6933 and 7292) against references that recompute the whole
sequence without a cache: an argmax loop for greedy, exhaustive enumeration of every continuation for beam search,
``softmax(logits / T)`` for sampling frequencies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from kexue.generation import (
    GenerationConfig,
    apply_repetition_penalty,
    beam_search,
    filter_top_k_top_p,
    generate,
    generate_many,
    left_pad,
)
from kexue.models import CausalLM


def tiny_lm(positions: str = "learned", vocab: int = 7, seed: int = 0) -> CausalLM:
    """A random 1-layer LM; ``init_std=0.3`` makes logits of order 1, so next-token distributions are neither flat
    nor one-hot (wrong tokens, temperatures or beams then show)."""
    torch.manual_seed(seed)
    config = dict(dim=16, num_heads=2, num_layers=1, dropout=0.0, positions=positions, max_length=32)
    return CausalLM(vocab_size=vocab, config=config, init_std=0.3).eval()


class Recorder(nn.Module):
    """Wraps an LM: adds ``bias`` (V,) to its logits (to make eos likely) and records each call's last logits."""

    def __init__(self, lm: CausalLM, bias: Tensor | None = None) -> None:
        super().__init__()
        self.lm, self.bias, self.calls = lm, bias, []

    def new_cache(self):  # noqa: ANN201
        return self.lm.new_cache()

    def forward(self, ids: Tensor, **kwargs) -> Tensor:
        logits = self.lm(ids, **kwargs)  # (B, T, V)
        if self.bias is not None:
            logits = logits + self.bias
        self.calls.append(logits[:, -1])
        return logits


def eos_biased(lm: CausalLM, eos: int, bias: float) -> Recorder:
    return Recorder(lm, torch.zeros(lm.vocab_size).index_fill_(0, torch.tensor([eos]), bias))


@torch.no_grad()
def full_logits(model: nn.Module, seqs: list[list[int]]) -> Tensor:
    """Last-position logits ``(N, V)`` of equal-length sequences, one forward without cache or padding."""
    return model(torch.tensor(seqs))[:, -1]


def brute_greedy(model: nn.Module, prompt: list[int], steps: int, eos: int | None = None,
                 penalty: float = 1.0) -> list[int]:
    seq = list(prompt)
    for _ in range(steps):
        logits = full_logits(model, [seq])[0]
        seen = torch.zeros_like(logits, dtype=torch.bool)
        seen[seq] = True
        logits = torch.where(seen & (logits > 0), logits / penalty, torch.where(seen, logits * penalty, logits))
        seq.append(int(logits.argmax()))
        if seq[-1] == eos:
            break
    return seq[len(prompt):]


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_greedy_equals_full_recompute_and_cached_logits_match(positions):
    model = Recorder(tiny_lm(positions))
    prompt = [1, 2, 3]
    out = generate(model, [prompt], max_new_tokens=6)
    assert out == [brute_greedy(model, prompt, 6)]
    calls = model.calls[:6]  # the decoding calls (brute_greedy's came after)
    for t, logits in enumerate(calls):
        assert torch.allclose(logits[0], full_logits(model.lm, [prompt + out[0][:t]])[0], atol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_batched_left_padded_equals_each_alone(positions):
    model = eos_biased(tiny_lm(positions), eos=3, bias=1.0)
    prompts = [[1], [2, 4, 5, 6], [6, 1, 2], [5, 5]]
    config = GenerationConfig(max_new_tokens=7, eos_id=3, pad_id=0)
    batched = generate(model, prompts, config)
    alone = [generate(model, [p], config)[0] for p in prompts]
    assert batched == alone == [brute_greedy(model, p, 7, eos=3) for p in prompts]
    lengths = {len(o) for o in batched}
    assert len(lengths) > 1 and 7 in lengths and any(o[-1] == 3 for o in batched)  # some rows stopped early


def test_repetition_penalty_equals_brute_force_and_greedy_ignores_it():
    """Top-k 1 sampling is the penalised argmax (the brute force); greedy is the plain argmax whatever
    ``repetition_penalty`` says (the sampling knobs act only when sampling: greedy = transformers' greedy)."""
    model = tiny_lm("rotary")
    prompts = [[2], [2, 1, 1, 4]]  # pad_id 3, the first prompt's greedy token, must not count as seen
    out = generate(model, prompts, max_new_tokens=8, pad_id=3, repetition_penalty=3.0, do_sample=True, top_k=1)
    assert out == [brute_greedy(model, p, 8, penalty=3.0) for p in prompts]
    plain = generate(model, prompts, max_new_tokens=8, pad_id=3)
    assert out != plain  # the penalty mattered
    assert generate(model, prompts, max_new_tokens=8, pad_id=3, repetition_penalty=3.0, top_k=2, top_p=0.5,
                    temperature=5.0) == plain


def test_generate_many_returns_num_return_continuations_per_prompt():
    model = tiny_lm("rotary")
    prompts = [[1, 2, 3], [4]]
    beams = generate_many(model, prompts, num_beams=3, num_return=2, max_new_tokens=4)
    assert beams == [[hyp for hyp, _ in hyps] for hyps in beam_search(model, prompts, num_beams=3, num_return=2,
                                                                        max_new_tokens=4)]
    samples = generate_many(model, prompts, do_sample=True, temperature=3.0, num_return=4, max_new_tokens=6, seed=0)
    assert [len(s) for s in samples] == [4, 4] and len({tuple(s) for s in samples[0]}) > 1  # independent draws
    assert generate_many(model, prompts, max_new_tokens=4) == [[g] for g in generate(model, prompts, max_new_tokens=4)]


def test_min_new_tokens_forbids_early_eos():
    model = eos_biased(tiny_lm(), eos=3, bias=4.0)
    assert generate(model, [[1, 2]], max_new_tokens=6, eos_id=3) == [[3]]
    out = generate(model, [[1, 2]], max_new_tokens=6, eos_id=3, min_new_tokens=2)[0]
    assert 3 not in out[:2] and out[2:] == [3]


def exhaustive(model: nn.Module, prompt: list[int], vocab: int, steps: int, eos: int | None,
               alpha: float) -> list[tuple[list[int], float]]:
    """Every continuation ending at eos or at ``steps`` tokens, scored ``sum log p / L ** alpha``, best first."""
    conts = [list(c) for c in itertools.product(range(vocab), repeat=steps)]
    with torch.no_grad():
        logp = model(torch.tensor([prompt + c for c in conts])).log_softmax(-1)  # (N, P + steps, V)
    scored = {}
    for c, lp in zip(conts, logp):
        end = c.index(eos) + 1 if eos in c else steps
        total = sum(float(lp[len(prompt) - 1 + t, c[t]]) for t in range(end))
        scored[tuple(c[:end])] = total / end ** alpha
    return sorted(((list(c), s) for c, s in scored.items()), key=lambda h: -h[1])


def assert_same_hypotheses(got, want, n):
    assert [h for h, _ in got] == [h for h, _ in want[:n]]
    assert [s for _, s in got] == pytest.approx([s for _, s in want[:n]], abs=1e-4)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_beam_search_with_all_beams_equals_exhaustive_search(positions):
    V, N = 4, 3
    model = tiny_lm(positions, vocab=V)
    prompts = [[1, 2], [3]]
    got = beam_search(model, prompts, num_beams=V**N, max_new_tokens=N, num_return=6)
    for p, hyps in zip(prompts, got):
        assert_same_hypotheses(hyps, exhaustive(model, p, V, N, None, 0.0), 6)
    assert generate(model, prompts, num_beams=V**N, max_new_tokens=N) == [h[0][0] for h in got]


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_beam_search_with_eos_and_length_penalty_equals_exhaustive_search(alpha):
    V, N, eos = 4, 3, 2
    model = eos_biased(tiny_lm("rotary", vocab=V, seed=1), eos=eos, bias=2.0)
    prompts = [[1, 3], [0, 0, 1]]
    got = beam_search(model, prompts, num_beams=40, max_new_tokens=N, eos_id=eos, length_penalty=alpha,
                      num_return=8)
    for p, hyps in zip(prompts, got):
        want = exhaustive(model, p, V, N, eos, alpha)
        assert_same_hypotheses(hyps, want, 8)
        assert {len(h) for h, _ in want[:8]} != {N}  # eos-ended hypotheses compete


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_beam_early_stopping_equals_running_to_the_end(alpha):
    model = eos_biased(tiny_lm("learned"), eos=3, bias=2.5)  # a bound at the current length stops too early here
    prompts = [[1, 2], [4], [5, 6, 1]]
    kwargs = dict(num_beams=3, max_new_tokens=10, eos_id=3, length_penalty=alpha, num_return=3)
    early = beam_search(model, prompts, **kwargs)
    early_calls = len(model.calls)
    model.calls.clear()
    full = beam_search(model, prompts, early_stopping=False, **kwargs)
    assert len(model.calls) == 10
    for e, f in zip(early, full):
        assert_same_hypotheses(e, f, 3)
    if alpha <= 0:
        assert early_calls < 10  # and it did stop early


def test_top_k_1_and_tiny_top_p_sampling_equal_greedy():
    model = tiny_lm("rotary")
    prompts = [[1, 2, 3], [4], [6, 6]]
    greedy = generate(model, prompts, max_new_tokens=8)
    assert generate(model, prompts, max_new_tokens=8, do_sample=True, top_k=1, temperature=3.0, seed=0) == greedy
    assert generate(model, prompts, max_new_tokens=8, do_sample=True, top_p=1e-6, temperature=3.0, seed=0) == greedy
    assert generate(model, prompts, max_new_tokens=8, do_sample=True, temperature=3.0, seed=0) != greedy


@pytest.mark.parametrize(("temperature", "top_k"), [(0.5, None), (2.0, None), (1.0, 2)])
def test_sampling_frequencies_match_softmax(temperature, top_k):
    model, draws = tiny_lm(vocab=5), 4000
    logits = full_logits(model, [[1, 2]])[0]  # (V,)
    kept = torch.full_like(logits, float("-inf")) if top_k else logits
    if top_k:
        top = logits.topk(top_k).indices
        kept[top] = logits[top]
    want = (kept / temperature).softmax(-1)
    assert (want - logits.softmax(-1)).abs().max() > 0.08  # the setting moves some probability well past atol
    config = GenerationConfig(max_new_tokens=1, do_sample=True, temperature=temperature, top_k=top_k, seed=3)
    out = generate(model, [[1, 2]] * draws, config)
    freq = torch.bincount(torch.tensor(out)[:, 0], minlength=5).float() / draws
    assert torch.allclose(freq, want, atol=0.03)  # about 4 standard deviations of a frequency at p = 1/2
    if temperature == 0.5:  # seeded: reproducible, through config.seed or an explicit generator
        assert generate(model, [[1, 2]] * draws, config) == out
        assert generate(model, [[1, 2]] * draws, config, generator=torch.Generator().manual_seed(3)) == out


def test_repetition_penalty_rule():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0], [2.0, -1.0, 0.5, -3.0, 0.0]])
    seen = torch.tensor([[True, True, False, False, True], [False, False, True, True, False]])
    want = torch.tensor([[1.0, -2.0, 0.5, -3.0, 0.0], [2.0, -1.0, 0.25, -6.0, 0.0]])
    assert torch.equal(apply_repetition_penalty(logits, seen, 2.0), want)


def test_top_k_top_p_filter():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda out: (out > float("-inf")).tolist()[0]  # noqa: E731
    assert kept(filter_top_k_top_p(logits, top_k=2)) == [True, True, False, False]
    assert kept(filter_top_k_top_p(logits, top_p=0.7)) == [True, True, False, False]
    assert kept(filter_top_k_top_p(logits, top_p=0.85)) == [True, True, True, False]
    assert kept(filter_top_k_top_p(logits, top_p=0.4)) == [True, False, False, False]
    assert kept(filter_top_k_top_p(logits.flip(-1), top_k=3, top_p=0.6)) == [False, False, True, True]


def test_left_pad():
    ids, padding, positions = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert padding.tolist() == [[True, True, True], [False, False, True]]
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0]]


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(prompts=[]), r"prompts must be a non-empty list.*\[\]"),
    (dict(prompts=[[1], []]), r"prompts \[1\] are empty"),
    (dict(num_beams=0), "num_beams must be >= 1, got 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
    (dict(temperature=0.0), "temperature must be > 0, got 0.0"),
    (dict(temperature=-1.0), "temperature must be > 0, got -1.0"),
    (dict(num_beams=2, num_return=3), r"num_return must be in \[1, num_beams=2\] unless do_sample"),
    (dict(num_return=2), r"num_return must be in \[1, num_beams=1\] unless do_sample \(greedy has one"),
    (dict(eos_id=7), "eos_id=7 but the model's vocabulary has V=7"),
])
def test_bad_input_is_a_value_error(kwargs, match):
    prompts = kwargs.pop("prompts", [[1, 2]])
    with pytest.raises(ValueError, match=match):
        generate(tiny_lm(), prompts, **kwargs)


def test_exhaustive_reference_scores_are_log_probabilities():
    """The reference itself: with no eos the scores of all V^N continuations are a distribution."""
    model = tiny_lm(vocab=3)
    total = sum(math.exp(s) for _, s in exhaustive(model, [1], 3, 2, None, 0.0))
    assert total == pytest.approx(1.0, abs=1e-5)
