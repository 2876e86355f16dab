"""Linear-chain conditional random field, after 简明条件随机场CRF介绍 (https://kexue.fm/archives/5542).

A path ``y`` of tags over ``x`` scores ``s(y) = start[y_0] + sum_t emission_t[y_t] + sum_t T[y_{t-1}, y_t]
+ end[y_{L-1}]``; the CRF normalises over all ``K^L`` paths at once, ``P(y | x) = exp(s(y)) / Z(x)``, with
``log Z`` from the forward (logsumexp) recursion and the best path from Viterbi.

The contract follows pytorch-crf so one can be swapped for the other: ``forward`` returns the
log-likelihood (negate it for a loss) with the same default reduction (``"sum"``), ``decode`` the best paths;
the parameter names ``transitions``, ``start_transitions`` and ``end_transitions`` are the same too, so a
state dict loads into either. Unlike pytorch-crf, ``decode`` returns one ``LongTensor`` padded with ``-1``
and accepts :class:`TransitionConstraints` (e.g. :func:`bmes_constraints`).

Also here, shared with :mod:`kexue.nn.memm`: input validation and batched Viterbi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from kexue.losses import reduce_loss


@dataclass(frozen=True, eq=False)
class TransitionConstraints:
    """Which tag sequences :meth:`decode` may return; everything else gets a score of ``-inf``.

    Args:
        allowed: ``(K, K)`` bool, ``allowed[i, j]``: tag ``i`` may be followed by tag ``j``.
        start: ``(K,)`` bool, tags a sequence may begin with.
        end: ``(K,)`` bool, tags a sequence may end with.
    """

    allowed: Tensor
    start: Tensor
    end: Tensor

    def __post_init__(self) -> None:
        for name in ("allowed", "start", "end"):
            object.__setattr__(self, name, torch.as_tensor(getattr(self, name), dtype=torch.bool))
        K = self.start.shape[0] if self.start.dim() == 1 else -1
        if K < 1 or self.allowed.shape != (K, K) or self.end.shape != (K,):
            raise ValueError(f"constraints need allowed (K, K), start (K,) and end (K,), got "
                             f"{tuple(self.allowed.shape)}, {tuple(self.start.shape)}, {tuple(self.end.shape)}")

    @property
    def num_tags(self) -> int:
        return self.start.shape[0]

    def penalties(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Additive ``0 / -inf`` scores (transitions ``(K, K)``, start ``(K,)``, end ``(K,)``) in ``like``'s dtype."""
        def to(allowed: Tensor) -> Tensor:
            zero = torch.zeros(allowed.shape, dtype=like.dtype, device=like.device)
            return zero.masked_fill(~allowed.to(like.device), float("-inf"))
        return to(self.allowed), to(self.start), to(self.end)


def _split_tags(tags: Sequence[str], prefixes: str) -> list[tuple[str, str]]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"S"`` -> ``("S", "")``; ValueError for an unknown prefix."""
    parts = []
    for tag in tags:
        prefix, _, label = tag.partition("-")
        if prefix not in tuple(prefixes) or (prefix == "O" and label):
            raise ValueError(f"tag {tag!r} does not start with one of {'/'.join(prefixes)} (then '-LABEL' or nothing)")
        parts.append((prefix, label))
    return parts


def bmes_constraints(tags: Sequence[str]) -> TransitionConstraints:
    """Constraints of the B/M/E/S(/O) scheme, e.g. ``["B", "M", "E", "S"]`` for word segmentation or
    ``["O", "B-PER", "M-PER", "E-PER", "S-PER", ...]`` for NER.

    A ``B-X`` or ``M-X`` must be followed by ``M-X`` or ``E-X``; anything else (``E``, ``S``, ``O``) by
    ``B``, ``S`` or ``O``. Sequences start outside a word (``B``, ``S``, ``O``) and end outside one
    (``E``, ``S``, ``O``): so never B->B, B->S, M->B, M->S, E->M, E->E, S->M, S->E.
    """
    parts = _split_tags(tags, "BMESO")
    inside = [p in "BM" for p, _ in parts]  # inside a word that is not finished
    allowed = [[(p2 in "ME" and l1 == l2) if inside[i] else p2 in "BSO" for p2, l2 in parts]
               for i, (_, l1) in enumerate(parts)]
    return TransitionConstraints(allowed, [p in "BSO" for p, _ in parts], [p in "ESO" for p, _ in parts])


def bio_constraints(tags: Sequence[str]) -> TransitionConstraints:
    """Constraints of the B/I/O scheme, e.g. ``["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]``:
    ``I-X`` only after ``B-X`` or ``I-X``, and never first. Any tag may end a sequence.
    """
    parts = _split_tags(tags, "BIO")
    allowed = [[p2 != "I" or (p1 in "BI" and l1 == l2) for p2, l2 in parts] for p1, l1 in parts]
    return TransitionConstraints(allowed, [p != "I" for p, _ in parts], [True] * len(parts))


def validate(num_tags: int, batch_first: bool, emissions: Tensor, tags: Tensor | None = None,
             mask: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Check the inputs of a CRF/MEMM and return them batch-first.

    Returns:
        emissions ``(B, T, K)`` with masked steps set to 0 (so padding never makes inf or nan, and
        gets zero gradient); tags ``(B, T)`` long with masked steps set to 0 (so any padding value works),
        or None; mask ``(B, T)`` bool.

    Raises:
        ValueError: saying what was expected and what was got.
    """
    dims = "(batch, seq_len" if batch_first else "(seq_len, batch"
    if emissions.dim() != 3:
        raise ValueError(f"emissions must have 3 dimensions {dims}, num_tags), got {emissions.dim()}")
    if emissions.shape[2] != num_tags:
        raise ValueError(f"emissions must have shape {dims}, num_tags={num_tags}), got {tuple(emissions.shape)}")
    if not emissions.is_floating_point():
        raise ValueError(f"emissions must be a floating-point tensor, got {emissions.dtype}")
    expected = f"{dims})={tuple(emissions.shape[:2])} like emissions"
    for name, x in (("tags", tags), ("mask", mask)):
        if x is None:
            continue
        if x.shape != emissions.shape[:2]:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
        if x.is_floating_point() or x.is_complex() or (name == "tags" and x.dtype == torch.bool):
            kind = "an integer" if name == "tags" else "a bool (or integer 0/1)"
            raise ValueError(f"{name} must be {kind} tensor, got {x.dtype}")
    if emissions.shape[1 if batch_first else 0] == 0:
        raise ValueError("emissions must have seq_len >= 1, got 0")
    if not batch_first:
        emissions, tags, mask = (None if x is None else x.transpose(0, 1) for x in (emissions, tags, mask))
    B, T, _ = emissions.shape
    mask = torch.ones(B, T, dtype=torch.bool, device=emissions.device) if mask is None else mask.bool()
    # All checks on values share one device sync; the messages are built only on failure.
    first_off = ~mask[:, 0]  # (B,)
    gap = (mask[:, 1:] & ~mask[:, :-1]).any(1)  # (B,) a true after a false
    bad_tag = mask & ((tags < 0) | (tags >= num_tags)) if tags is not None else mask[:, :0]  # (B, T)
    if any(torch.stack([first_off.any(), gap.any(), bad_tag.any()]).tolist()):
        first = "mask[:, 0]" if batch_first else "mask[0]"
        if first_off.any():
            raise ValueError(f"{first} must be all true (every sequence has a first step), "
                             f"got false for batch item(s) {first_off.nonzero().flatten().tolist()}")
        if gap.any():
            raise ValueError("mask must be true on a prefix of each sequence (right padding), got a false "
                             f"before a true in batch item(s) {gap.nonzero().flatten().tolist()}")
        raise ValueError(f"tags must be in [0, num_tags={num_tags}) where mask is true, "
                         f"got {sorted(set(tags[bad_tag].tolist()))}")
    if tags is not None:
        tags = tags.long().masked_fill(~mask, 0)
    return emissions.masked_fill(~mask.unsqueeze(2), 0), tags, mask


def check_constraints(constraints: TransitionConstraints | None, num_tags: int) -> None:
    if constraints is not None and constraints.num_tags != num_tags:
        raise ValueError(f"constraints are for {constraints.num_tags} tags, the model has num_tags={num_tags}")


def last_step(x: Tensor, mask: Tensor) -> Tensor:
    """The value of ``x (B, T, ...)`` at each sequence's last unmasked step -> ``(B, ...)``."""
    last = (mask.sum(1) - 1).view(-1, 1, *([1] * (x.dim() - 2)))  # (B, 1, 1...)
    return x.gather(1, last.expand(-1, 1, *x.shape[2:])).squeeze(1)  # (B, ...)


def viterbi(first: Tensor, pairs: Tensor, unary: Tensor | None, last: Tensor, mask: Tensor) -> Tensor:
    """Best path of a chain: ``first[y_0] + sum_t (pairs[t-1, y_{t-1}, y_t] + unary[t-1, y_t]) + last[y_{L-1}]``.

    Args:
        first: ``(B, K)`` scores of the first tag.
        pairs: ``(B or 1, T-1, K, K)`` scores of tag i at step t-1 followed by tag j at step t.
        unary: ``(B, T-1, K)`` scores of the tags at steps 1..T-1, or None.
        last: ``(B, K)`` or ``(K,)`` scores of each sequence's last tag.
        mask: ``(B, T)`` bool prefix mask.

    Returns:
        ``(B, T)`` long, the best tags, ``-1`` at masked steps.

    The loops run over time only. Steps past a sequence's end are computed and thrown away: the final
    scores are read at each sequence's last step and the back-pointers of padded steps are the identity.
    """
    B, T, K = mask.shape[0], mask.shape[1], first.shape[-1]
    score, scores, pointers = first, [first], []
    for t in range(T - 1):
        best, pointer = (score.unsqueeze(2) + pairs[:, t]).max(1)  # (B, K): best previous tag i for each j
        score = best if unary is None else best + unary[:, t]  # (B, K)
        scores.append(score)
        pointers.append(pointer)
    final = last_step(torch.stack(scores, 1), mask) + last  # (B, K)
    if T > 1:
        identity = torch.arange(K, device=mask.device).expand(B, T - 1, K)  # (B, T-1, K)
        pointers = torch.where(mask[:, 1:, None], torch.stack(pointers, 1), identity)  # (B, T-1, K)
    tag = final.argmax(-1, keepdim=True)  # (B, 1)
    path = [tag]
    for t in range(T - 2, -1, -1):
        tag = pointers[:, t].gather(1, tag)  # (B, 1): best tag at step t given the one at t+1
        path.append(tag)
    return torch.cat(path[::-1], 1).masked_fill(~mask, -1)  # (B, T)


class ConditionalRandomField(nn.Module):
    """Linear-chain CRF over ``K`` tags (https://kexue.fm/archives/5542).

    Args:
        num_tags: ``K``.
        batch_first: inputs are ``(B, T, ...)``; False for ``(T, B, ...)`` as in pytorch-crf.
        start_end_scores: learn scores of the first and the last tag (pytorch-crf always does).
        transition_lr_multiplier: the post's trick of training the transition matrix with a larger
            learning rate than the encoder; used only through :meth:`param_groups`.

    Shapes (batch-first): emissions ``(B, T, K)`` float, tags ``(B, T)`` int, mask ``(B, T)`` bool, true on
    a prefix of each row with ``mask[:, 0]`` all true. Tags at masked steps are ignored.
    """

    def __init__(self, num_tags: int, batch_first: bool = True, start_end_scores: bool = True,
                 transition_lr_multiplier: float = 1.0) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags, self.batch_first = num_tags, batch_first
        self.transition_lr_multiplier = transition_lr_multiplier
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # [i, j]: i then j
        if start_end_scores:
            self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
            self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        else:
            self.register_parameter("start_transitions", None)
            self.register_parameter("end_transitions", None)

    def extra_repr(self) -> str:
        return (f"num_tags={self.num_tags}, batch_first={self.batch_first}, "
                f"start_end_scores={self.start_transitions is not None}, "
                f"transition_lr_multiplier={self.transition_lr_multiplier}")

    def param_groups(self) -> list[dict]:
        """One optimizer group of this module's parameters with ``lr_multiplier = transition_lr_multiplier``.

        Su's CRF layer has an ``lr_multiplier`` because at the small learning rate that fine-tunes a
        pretrained encoder the transition matrix barely moves (你的CRF层的学习率可能不够大,
        https://kexue.fm/archives/7196). Here it is a plain optimizer group, so it means the same for SGD
        and Adam: put every other parameter in a group of its own and scale the learning rates with
        :func:`kexue.optim.scaled_param_groups`::

            crf_ids = {id(p) for p in model.crf.parameters()}
            rest = [p for p in model.parameters() if id(p) not in crf_ids]
            torch.optim.AdamW(scaled_param_groups([{"params": rest}, *model.crf.param_groups()], lr), lr=lr)
        """
        return [{"params": list(self.parameters()), "lr_multiplier": self.transition_lr_multiplier}]

    def _start_end(self, like: Tensor) -> tuple[Tensor, Tensor]:
        if self.start_transitions is None:
            zero = like.new_zeros(self.num_tags)
            return zero, zero
        return self.start_transitions, self.end_transitions

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
                reduction: str = "sum") -> Tensor:
        """Log-likelihood ``log P(tags | emissions)``: ``(B,)`` for reduction "none", else a scalar.

        ``reduction`` is "sum" by default, as in pytorch-crf (so a swap keeps the loss's scale), or "mean"
        (over the batch), "token_mean" (over the unmasked steps) or "none"; see :func:`kexue.losses.reduce_loss`.
        """
        emissions, tags, mask = validate(self.num_tags, self.batch_first, emissions, tags, mask)
        llh = self._path_score(emissions, tags, mask) - self._log_partition(emissions, mask)  # (B,)
        return reduce_loss(llh, reduction, mask)

    def _path_score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``s(y)`` of the given tags, vectorised over time -> ``(B,)``."""
        start, end = self._start_end(emissions)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T), 0 where masked
        moved = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        score = emitted.sum(1) + moved.masked_fill(~mask[:, 1:], 0).sum(1)  # (B,)
        return score + start[tags[:, 0]] + end[last_step(tags, mask)]  # (B,)

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Z (B,)`` by the recursion ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + T[i, j]) + e_t[j]``.

        Steps past a sequence's end are computed and dropped (the alphas are read at its last step).
        """
        start, end = self._start_end(emissions)
        alpha = emissions[:, 0] + start  # (B, K)
        alphas = [alpha]
        for t in range(1, emissions.shape[1]):
            alpha = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, 1) + emissions[:, t]  # (B, K)
            alphas.append(alpha)
        return torch.logsumexp(last_step(torch.stack(alphas, 1), mask) + end, 1)  # (B,)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None,
               constraints: TransitionConstraints | None = None) -> Tensor:
        """Best tag paths by Viterbi, ``(B, T)`` long (``(T, B)`` if not batch_first), ``-1`` at masked steps.

        ``constraints`` forbids transitions, first and last tags (their scores become ``-inf``).
        """
        emissions, _, mask = validate(self.num_tags, self.batch_first, emissions, None, mask)
        check_constraints(constraints, self.num_tags)
        start, end = self._start_end(emissions)
        transitions = self.transitions
        if constraints is not None:
            no_move, no_start, no_end = constraints.penalties(emissions)
            transitions, start, end = transitions + no_move, start + no_start, end + no_end
        pairs = transitions.expand(1, emissions.shape[1] - 1, -1, -1)  # (1, T-1, K, K), a view
        path = viterbi(emissions[:, 0] + start, pairs, emissions[:, 1:], end, mask)  # (B, T)
        return path if self.batch_first else path.transpose(0, 1)
