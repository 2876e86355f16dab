"""Maximum entropy Markov model, after CRF用过了,不妨再了解下更快的MEMM? (https://kexue.fm/archives/7213).

Where the CRF normalises over whole paths, the MEMM normalises each step given the previous tag:

    P(y_0 | x) = softmax(e_0 + start)[y_0],   P(y_t | y_{t-1}, x) = softmax_j(e_t[j] + T[y_{t-1}, j])[y_t]

so the log-likelihood is a sum of per-step log-softmax terms, computed for all steps at once (no
recursion over time), and the probabilities of all paths of a sequence sum to 1. Decoding is Viterbi over
the per-step log-probabilities. Same contract as :class:`kexue.nn.crf.ConditionalRandomField`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kexue.losses import reduce_loss
from kexue.nn.crf import TransitionConstraints, check_constraints, last_step, validate, viterbi


class MaximumEntropyMarkovModel(nn.Module):
    """Locally normalised chain over ``K`` tags (https://kexue.fm/archives/7213).

    Args:
        num_tags: ``K``.
        batch_first: inputs are ``(B, T, ...)``; False for ``(T, B, ...)``.
        bidirectional: the post's bidirectional MEMM: add a right-to-left MEMM on the same emissions,
            with its own ``backward_transitions`` and ``backward_start_transitions`` (scores of the last
            tag), ``P(y_t | y_{t+1}, x) = softmax_i(e_t[i] + T_b[i, y_{t+1}])[y_t]``; the log-likelihood
            is the mean of the two directions'.

    ``transitions[i, j]`` (and ``backward_transitions[i, j]``) score tag ``i`` followed by tag ``j``.
    Shapes (batch-first): emissions ``(B, T, K)`` float, tags ``(B, T)`` int, mask ``(B, T)`` bool, true on
    a prefix of each row with ``mask[:, 0]`` all true. Tags at masked steps are ignored.
    """

    def __init__(self, num_tags: int, batch_first: bool = True, bidirectional: bool = False) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags, self.batch_first, self.bidirectional = num_tags, batch_first, bidirectional
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # [i, j]: i then j
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        if bidirectional:
            self.backward_transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
            self.backward_start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        else:
            self.register_parameter("backward_transitions", None)
            self.register_parameter("backward_start_transitions", None)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, batch_first={self.batch_first}, bidirectional={self.bidirectional}"

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
                reduction: str = "sum") -> Tensor:
        """Log-likelihood ``log P(tags | emissions)`` (the mean of both directions' if bidirectional):
        ``(B,)`` for reduction "none", else a scalar; reductions as the CRF's (default "sum")."""
        emissions, tags, mask = validate(self.num_tags, self.batch_first, emissions, tags, mask)
        llh = self._forward_llh(emissions, tags, mask)  # (B,)
        if self.bidirectional:
            llh = (llh + self._backward_llh(emissions, tags, mask)) / 2  # (B,)
        return reduce_loss(llh, reduction, mask)

    def _forward_llh(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Left to right: only the row ``T[y_{t-1}]`` of each step is needed, so this is ``O(B T K)``."""
        first = (emissions[:, 0] + self.start_transitions).log_softmax(-1)  # (B, K)
        logits = emissions[:, 1:] + self.transitions[tags[:, :-1]]  # (B, T-1, K): e_t + T[y_{t-1}, :]
        steps = logits.log_softmax(-1).gather(2, tags[:, 1:, None]).squeeze(2)  # (B, T-1)
        return first.gather(1, tags[:, :1]).squeeze(1) + steps.masked_fill(~mask[:, 1:], 0).sum(1)  # (B,)

    def _backward_llh(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Right to left: step ``t`` normalises over ``y_t`` given ``y_{t+1}``; the last tag over ``e_{L-1}``."""
        last = (last_step(emissions, mask) + self.backward_start_transitions).log_softmax(-1)  # (B, K)
        logits = emissions[:, :-1] + self.backward_transitions.t()[tags[:, 1:]]  # (B, T-1, K): e_t + T_b[:, y_{t+1}]
        steps = logits.log_softmax(-1).gather(2, tags[:, :-1, None]).squeeze(2)  # (B, T-1)
        return last.gather(1, last_step(tags, mask)[:, None]).squeeze(1) + steps.masked_fill(~mask[:, 1:], 0).sum(1)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None,
               constraints: TransitionConstraints | None = None) -> Tensor:
        """Best tag paths by Viterbi, ``(B, T)`` long (``(T, B)`` if not batch_first), ``-1`` at masked steps.

        One-directional: the path of highest ``log P(y | x)``, exactly. Bidirectional: the path of highest
        :meth:`forward` value, the mean of the two directions' log-likelihoods. Each direction's term for a
        step depends only on the tags at steps ``t-1`` and ``t``, so their sum is still a chain and Viterbi
        is exact for it. (The two directions do not make one normalised model: this maximises the training
        objective, not a probability.)
        """
        emissions, _, mask = validate(self.num_tags, self.batch_first, emissions, None, mask)
        check_constraints(constraints, self.num_tags)
        first = (emissions[:, 0] + self.start_transitions).log_softmax(-1)  # (B, K)
        pairs = (emissions[:, 1:, None, :] + self.transitions).log_softmax(-1)  # (B, T-1, K, K): log P(j | i)
        last = torch.zeros_like(first)  # (B, K)
        if self.bidirectional:
            back = (emissions[:, :-1, :, None] + self.backward_transitions).log_softmax(-2)  # (B, T-1, K, K): P(i | j)
            pairs = pairs + back  # (B, T-1, K, K)
            last = last + (last_step(emissions, mask) + self.backward_start_transitions).log_softmax(-1)  # (B, K)
        if constraints is not None:
            no_move, no_start, no_end = constraints.penalties(emissions)
            first, pairs, last = first + no_start, pairs + no_move, last + no_end
        path = viterbi(first, pairs, None, last, mask)  # (B, T)
        return path if self.batch_first else path.transpose(0, 1)
