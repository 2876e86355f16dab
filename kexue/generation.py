"""Decoding for causal language models (:class:`kexue.models.CausalLM`): greedy, sampling (temperature, top-k,
top-p, repetition penalty) and beam search, batched over left-padded prompts, one token per step on a KV cache.

Posts: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933) -- a language model generates
by feeding each predicted token back in; 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292) -- GPT-2 text
continued by random sampling with top-k. bert4keras' ``AutoRegressiveDecoder`` (``beam_search`` / ``random_sample``)
is the model followed for the facts; the code is our own.

The model contract: ``model(ids, padding=..., positions=..., cache=...)`` maps ``ids (B, T)`` to logits
``(B, T, V)``; ``model.new_cache()`` is a :class:`kexue.nn.attention.KVCache`. Prompts are left-padded
(:func:`left_pad`) so that every row's next token sits in the last column. Put the model in ``eval()`` mode first:
nothing here changes it.

Outputs are the new tokens only, as ``list[list[int]]`` without padding; a sequence that ended with ``eos_id``
keeps it as its last token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.errors import UsageError


@dataclass
class GenerationConfig:
    """How to decode. Greedy (``do_sample=False``, ``num_beams=1``, the defaults) is exactly the argmax of the
    model's next-token logits: the sampling knobs (``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``)
    act only when sampling (the penalty in beam search too), so a config that samples becomes greedy by
    ``do_sample=False`` alone, as transformers' ``generate(do_sample=False)`` on the same model.
    :data:`SAMPLING` is the one default of the tasks that sample (language_model, cond_lm).

    Args:
        max_new_tokens: at most this many new tokens per prompt.
        eos_id: a row that emits it stops (``None``: always ``max_new_tokens``).
        pad_id: fills the left of short prompts and the rows that stopped; must be a valid token id.
        min_new_tokens: ``eos_id`` is forbidden until this many tokens were generated.
        do_sample: sample from the processed distribution instead of taking the argmax (``num_beams == 1`` only).
        temperature: logits are divided by it before sampling (``> 0``).
        top_k: sample among the ``k`` most likely tokens only (``None``: all).
        top_p: nucleus sampling, among the fewest most likely tokens whose probability reaches ``top_p``
            (``(0, 1]``; 1 keeps all).
        repetition_penalty: CTRL's rule on the tokens of the prompt and the output so far (1 = off), see
            :func:`apply_repetition_penalty`; sampling and beam search only.
        num_beams: beam width ``K``; ``1`` is greedy or sampling, more is :func:`beam_search`.
        length_penalty: ``alpha`` in a finished hypothesis' score ``sum log p / L ** alpha`` (``L`` new tokens,
            ``eos`` included; HF's ``length_penalty``, not GNMT's ``((5 + L) / 6) ** alpha``); 0 is the plain sum,
            ``> 0`` favours longer outputs.
        early_stopping: beam search stops a prompt once nothing still alive can enter its ``K`` best finished
            hypotheses (an exact bound, see :func:`beam_search`); ``False`` always runs ``max_new_tokens`` steps.
        num_return: continuations per prompt (:func:`generate_many`): the best hypotheses of :func:`beam_search`
            (``<= num_beams``) or independent samples (``do_sample``); greedy has one.
        seed: seeds a ``torch.Generator`` for sampling when none is passed (``None``: the global generator).
    """

    max_new_tokens: int = 32
    eos_id: int | None = None
    pad_id: int = 0
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_beams: int = 1
    length_penalty: float = 0.0
    early_stopping: bool = True
    num_return: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens": (self.max_new_tokens >= 1, ">= 1"),
            "min_new_tokens": (0 <= self.min_new_tokens <= self.max_new_tokens,
                               f"in [0, max_new_tokens={self.max_new_tokens}]"),
            "pad_id": (self.pad_id >= 0, ">= 0"),
            "eos_id": (self.eos_id is None or self.eos_id >= 0, "None or >= 0"),
            "temperature": (self.temperature > 0, "> 0"),
            "top_k": (self.top_k is None or self.top_k >= 1, "None or >= 1"),
            "top_p": (0 < self.top_p <= 1, "in (0, 1]"),
            "repetition_penalty": (self.repetition_penalty > 0, "> 0"),
            "num_beams": (self.num_beams >= 1, ">= 1"),
            "num_return": (self.num_return >= 1 and (self.do_sample or self.num_return <= self.num_beams),
                           f"in [1, num_beams={self.num_beams}] unless do_sample (greedy has one continuation)"),
            "do_sample": (not (self.do_sample and self.num_beams > 1),
                          f"False with num_beams={self.num_beams} > 1 (beams are not sampled)"),
        }
        for name, (ok, need) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {need}, got {getattr(self, name)!r}")

    @property
    def penalises(self) -> bool:
        """Whether :attr:`repetition_penalty` acts: sampling and beam search; greedy is the plain argmax."""
        return self.repetition_penalty != 1.0 and (self.do_sample or self.num_beams > 1)


# The one default of the tasks that sample (a task changes its length only): top-k 20 as in
# https://kexue.fm/archives/7292's GPT-2 examples, within the top-p 0.95 nucleus.
SAMPLING = GenerationConfig(do_sample=True, top_k=20, top_p=0.95, seed=0)

def left_pad(prompts: list[list[int]], pad_id: int = 0,
             device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Left-pad token-id lists into a batch.

    Returns ``ids`` ``(B, T)`` (``T`` the longest prompt), ``padding`` ``(B, T)`` ``True`` on real tokens, and
    ``positions`` ``(B, T)`` = ``cumsum(padding) - 1`` clipped at 0, so each row's first real token is position 0.
    """
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of token-id lists, got {prompts!r}")
    empty = [i for i, p in enumerate(prompts) if len(p) == 0]
    if empty:
        raise ValueError(f"prompts {empty} are empty: a causal LM needs at least one token (e.g. a BOS) to start")
    T = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (T - len(p)) + list(p) for p in prompts], dtype=torch.long, device=device)
    padding = torch.tensor([[False] * (T - len(p)) + [True] * len(p) for p in prompts], device=device)  # (B, T)
    positions = (padding.long().cumsum(1) - 1).clamp(min=0)  # (B, T)
    return ids, padding, positions


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty (Keskar et al. 2019, as HF): ``logits`` ``(B, V)`` of the tokens marked in ``seen``
    ``(B, V)`` (bool: in the prompt or generated) are divided by ``penalty`` where positive and multiplied by it where
    negative, so ``penalty > 1`` makes every repetition less likely. Returns a new ``(B, V)``."""
    if logits.shape != seen.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and seen {tuple(seen.shape)} must both be (B, V)")
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)  # (B, V)
    return torch.where(seen, penalised, logits)


def filter_top_k_top_p(logits: Tensor, top_k: int | None = None, top_p: float = 1.0) -> Tensor:
    """``logits`` ``(B, V)`` with every token outside the ``top_k`` largest, then outside the nucleus, set to
    ``-inf``. The nucleus is the fewest most likely tokens whose softmax mass reaches ``top_p`` (the token that
    crosses ``top_p`` stays; the most likely token always does)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)  # (B, V)
        drop = probs.cumsum(-1) - probs >= top_p  # (B, V): the mass before this token already reached top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _process(logits: Tensor, seen: Tensor, step: int, config: GenerationConfig) -> Tensor:
    """Next-token ``logits`` ``(B, V)`` after the repetition penalty and the ``min_new_tokens`` rule (float32)."""
    logits = logits.float()
    if config.penalises:
        logits = apply_repetition_penalty(logits, seen, config.repetition_penalty)
    if config.eos_id is not None and step < config.min_new_tokens:
        logits[:, config.eos_id] = float("-inf")
    return logits


def _prepare(model: nn.Module, prompts: list[list[int]], config: GenerationConfig, repeat: int):
    """Left-pad ``prompts``, repeat each row ``repeat`` times (beams), run them on a new cache.

    Returns the last-position logits ``(B * repeat, V)``, the cache, ``padding`` ``(B * repeat, T)``, the next
    positions ``(B * repeat,)`` and ``seen`` ``(B * repeat, V)`` (the prompt tokens, for the repetition penalty)."""
    device = next(model.parameters()).device
    ids, padding, positions = left_pad(prompts, config.pad_id, device)  # (B, T) each
    ids, padding, positions = (t.repeat_interleave(repeat, dim=0) for t in (ids, padding, positions))  # (BK, T)
    cache = model.new_cache()
    logits = model(ids, padding=padding, positions=positions, cache=cache)[:, -1]  # (BK, V)
    V = logits.shape[-1]
    for name in ("eos_id", "pad_id"):
        if getattr(config, name) is not None and getattr(config, name) >= V:
            raise ValueError(f"{name}={getattr(config, name)} but the model's vocabulary has V={V} tokens")
    seen = torch.zeros_like(logits, dtype=torch.float).scatter_add_(1, ids, padding.float()) > 0  # (BK, V)
    if not torch.isfinite(logits).all():  # one check per call: diverged weights would sample garbage, or crash
        raise UsageError("the model's next-token logits are not finite: its weights diverged (a learning rate or "
                         "weight decay too large?) or a size option overflows them")
    return logits, cache, padding, positions[:, -1] + 1, seen


def _config(config: GenerationConfig | None, overrides: dict) -> GenerationConfig:
    return replace(config or GenerationConfig(), **overrides)


@torch.no_grad()
def generate(model: nn.Module, prompts: list[list[int]], config: GenerationConfig | None = None,
             generator: torch.Generator | None = None, **overrides) -> list[list[int]]:
    """Continue each prompt: greedy (default), sampling (``do_sample``) or, with ``num_beams > 1``, the best
    hypothesis of :func:`beam_search`.

    Args:
        model: a causal LM as in the module docstring, in ``eval()`` mode.
        prompts: ``B`` non-empty token-id lists (any lengths: they are left-padded).
        config: a :class:`GenerationConfig`; ``overrides`` replace its fields (``generate(m, p, max_new_tokens=5)``).
        generator: the random source for sampling (default: one seeded with ``config.seed``, else the global one).

    Returns:
        ``B`` lists of new tokens, each ending at its first ``eos_id`` (kept) or after ``max_new_tokens``.
    """
    config = _config(config, overrides)
    if config.num_beams > 1:
        return [hyps[0][0] for hyps in beam_search(model, prompts, config)]
    logits, cache, padding, next_pos, seen = _prepare(model, prompts, config, repeat=1)
    if generator is None and config.seed is not None:
        generator = torch.Generator(logits.device).manual_seed(config.seed)
    B = logits.shape[0]
    rows = torch.arange(B, device=logits.device)
    finished = torch.zeros(B, dtype=torch.bool, device=logits.device)  # (B,)
    out = []
    for step in range(config.max_new_tokens):
        logits = _process(logits, seen, step, config)  # (B, V)
        if config.do_sample:
            logits = filter_top_k_top_p(logits / config.temperature, config.top_k, config.top_p)
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]  # (B,)
        else:
            token = logits.argmax(-1)  # (B,)
        token = token.masked_fill(finished, config.pad_id)
        out.append(token)
        seen[rows, token] |= ~finished
        if config.eos_id is not None:
            finished = finished | (token == config.eos_id)
        if bool(finished.all()) or step == config.max_new_tokens - 1:
            break
        padding = torch.cat([padding, ~finished[:, None]], dim=1)  # (B, S + 1): stopped rows feed padding
        logits = model(token[:, None], padding=padding, positions=next_pos[:, None], cache=cache)[:, -1]  # (B, V)
        next_pos = next_pos + 1
    tokens = torch.stack(out, dim=1).tolist()  # (B, N)
    if config.eos_id is None:
        return tokens
    return [row[:row.index(config.eos_id) + 1] if config.eos_id in row else row for row in tokens]


@torch.no_grad()
def generate_many(model: nn.Module, prompts: list[list[int]], config: GenerationConfig | None = None,
                  generator: torch.Generator | None = None, **overrides) -> list[list[list[int]]]:
    """``config.num_return`` continuations of each prompt: the best hypotheses of :func:`beam_search`
    (``num_beams > 1``, best first), or ``num_return`` independent samples (each prompt repeated, one batch);
    greedy gives its one. Arguments as :func:`generate`.

    Returns:
        per prompt (``B``), ``num_return`` lists of new tokens.
    """
    config = _config(config, overrides)
    n = config.num_return
    if config.num_beams > 1:
        return [[hyp for hyp, _ in hyps] for hyps in beam_search(model, prompts, config)]
    repeated = [p for p in prompts for _ in range(n)]  # (B * n) rows, a prompt's samples side by side
    outputs = generate(model, repeated, config, generator=generator)
    return [outputs[i * n:(i + 1) * n] for i in range(len(prompts))]


def _best_possible(score: float, length: int, config: GenerationConfig) -> float:
    """The best final score a live beam with log-prob sum ``score`` (<= 0) after ``length`` tokens can reach: its sum
    can only fall, and ``score / L ** alpha`` over the lengths ``L`` still open is largest at the longest
    (``alpha > 0``) or the shortest (``alpha < 0``)."""
    alpha = config.length_penalty
    if alpha == 0 or score == float("-inf"):
        return score
    return score / (config.max_new_tokens if alpha > 0 else length + 1) ** alpha


@torch.no_grad()
def beam_search(model: nn.Module, prompts: list[list[int]], config: GenerationConfig | None = None,
                **overrides) -> list[list[tuple[list[int], float]]]:
    """Beam search over ``K = num_beams`` hypotheses per prompt, all prompts in one batch of ``B * K`` rows.

    Each step extends every live beam by every token; each beam's ``eos_id`` continuation is offered to the
    prompt's pool of finished hypotheses (the ``K`` best by ``sum log p / L ** length_penalty``, ``L`` counting the
    eos), and the ``K`` best non-eos continuations by summed log-probability stay alive; after ``max_new_tokens``
    steps the live beams are offered too. The cache follows the surviving beams through ``cache.reorder``. Log-probs
    are ``log_softmax`` of the logits after the repetition penalty and ``min_new_tokens`` (no temperature).

    Early stopping (``config.early_stopping``): a prompt is done once its pool holds ``K`` hypotheses and the worst
    of them scores at least the best that any live beam could still reach (:func:`_best_possible`: log-probs only
    lower a sum, with the most favourable remaining length). The pool can then no longer change, so the result
    equals running all ``max_new_tokens`` steps. With ``length_penalty = 0`` this is bert4keras' rule
    (stop when the best beam has ended), widened to the ``K`` best.

    Returns:
        per prompt, its ``num_return`` best ``(new tokens, score)`` pairs, best first.
    """
    config = _config(config, overrides)
    K, N, eos = config.num_beams, config.max_new_tokens, config.eos_id
    logits, cache, padding, next_pos, seen = _prepare(model, prompts, config, repeat=K)
    BK, V = logits.shape
    B, device = BK // K, logits.device
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the K copies of a prompt are one beam until the first step
    tokens = torch.zeros(BK, 0, dtype=torch.long, device=device)  # (BK, t)
    pools: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B

    def offer(b: int, hyp: list[int], total: float) -> None:
        if not done[b] and total > float("-inf"):
            pools[b].append((total / len(hyp) ** config.length_penalty, hyp))
            pools[b] = sorted(pools[b], key=lambda s: -s[0])[:K]

    for step in range(N):
        logp = F.log_softmax(_process(logits, seen, step, config), dim=-1)  # (BK, V)
        total = scores[..., None] + logp.view(B, K, V)  # (B, K, V)
        if eos is not None:
            ended = total[..., eos].tolist()  # (B, K)
            for b in range(B):
                for k in range(K):
                    offer(b, tokens[b * K + k].tolist() + [eos], ended[b][k])
            total[..., eos] = float("-inf")
        scores, index = total.view(B, K * V).topk(K, dim=-1)  # (B, K): the best non-eos continuations
        parent, token = index // V, index % V  # (B, K)
        rows = (parent + torch.arange(B, device=device)[:, None] * K).view(-1)  # (BK,) their rows in the batch
        tokens = torch.cat([tokens[rows], token.view(BK, 1)], dim=1)  # (BK, t + 1)
        seen = seen[rows]
        seen[torch.arange(BK, device=device), token.view(-1)] = True
        if step == N - 1:
            live = scores.tolist()
            for b in range(B):
                for k in range(K):
                    offer(b, tokens[b * K + k].tolist(), live[b][k])
            break
        if config.early_stopping:
            best = scores.max(dim=-1).values.tolist()  # (B,)
            for b in range(B):
                if len(pools[b]) == K and pools[b][-1][0] >= _best_possible(best[b], step + 1, config):
                    done[b] = True
            if all(done):
                break
        cache.reorder(rows)
        padding = torch.cat([padding[rows], torch.ones(BK, 1, dtype=torch.bool, device=device)], dim=1)  # (BK, S+1)
        next_pos = next_pos[rows]
        logits = model(token.view(BK, 1), padding=padding, positions=next_pos[:, None], cache=cache)[:, -1]
        next_pos = next_pos + 1
    return [[(hyp, score) for score, hyp in pool[:config.num_return]] for pool in pools]


__all__ = ["SAMPLING", "GenerationConfig", "apply_repetition_penalty", "beam_search", "filter_top_k_top_p", "generate",
           "generate_many", "left_pad"]
