"""Blocks of the BERT-family tasks in their rooms: exact match and character F1 as functions and Metrics (hand
counts, a two-process merge), BERT's warm-up + linear decay as kexue.optim's schedule (the rates the hand-written
schedule of pretrain / reading_comprehension gave), and which parameters decay (kexue.fm/archives/7115, /6915)."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.metrics import CharF1, ExactMatch
from kexue.metrics.qa import char_f1, exact_match
from kexue.models.bert import Bert
from kexue.nn.transformer import TransformerConfig
from kexue.optim import no_weight_decay_groups, warmup_linear_decay

PREDS = ["周远", "1986年", "aab", "", "浙江"]
GOLD = [("周远",), ("1986年5月",), ("ab",), ("周远",), ("浙江省", "浙江")]
HAND_EM = [1, 0, 0, 0, 1]
HAND_F1 = [1.0, 2 * 5 / 12, 2 * 2 / 5, 0.0, 1.0]  # 5 shared of 5 + 7; one a shared of aab/ab, not two


def test_functions_against_hand_counts() -> None:
    assert [exact_match(p, g) for p, g in zip(PREDS, GOLD)] == HAND_EM
    assert [char_f1(p, g) for p, g in zip(PREDS, GOLD)] == pytest.approx(HAND_F1)
    assert exact_match(" 周远 ", ["林晓", "周远"]) == 1.0 and char_f1("林", ["周远"]) == 0.0


def test_metrics_average_over_batches_and_merge_like_two_processes() -> None:
    em, f1 = ExactMatch(), CharF1()
    for lo, hi in ((0, 2), (2, 5)):
        em.update(PREDS[lo:hi], GOLD[lo:hi])
        f1.update(PREDS[lo:hi], GOLD[lo:hi])
    assert em.compute().item() == pytest.approx(sum(HAND_EM) / 5)
    assert f1.compute().item() == pytest.approx(sum(HAND_F1) / 5)
    # Two ranks with unequal shares: the sum states give the mean over all examples, not the mean of the means.
    rank0, rank1 = CharF1(), CharF1()
    rank0.update(PREDS[:1], GOLD[:1])
    rank1.update(PREDS[1:], GOLD[1:])
    rank0.merge_state(rank1)
    assert rank0.compute().item() == pytest.approx(sum(HAND_F1) / 5)
    assert math.isnan(ExactMatch().compute().item())  # no example: no score (issue 29), not 0
    with pytest.raises(ValueError, match="one prediction per example"):
        em.update(["a"], [])


@pytest.mark.parametrize(("total", "warmup", "rounding"), [(100, 0.05, math.ceil), (7, 0.05, int), (20, 0.5, int),
                                                          (3, 0.99, math.ceil), (1, 0.05, int)])
def test_schedule_gives_the_hand_written_rates(total: int, warmup: float, rounding) -> None:
    warm = max(1, rounding(warmup * total))

    def hand(s: int) -> float:  # the schedule pretrain and reading_comprehension wrote by hand before
        return (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    scheduler = warmup_linear_decay(optimizer, warm, total)
    for step in range(total + 3):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * hand(step)), step
        optimizer.step()
        scheduler.step()


def test_no_decay_groups_are_the_hand_made_ones_on_a_bert() -> None:
    bert = Bert(11, TransformerConfig(dim=8, num_layers=1, num_heads=2, ffn_dim=16, max_length=8, condition_dim=4),
                pooler=False, mlm=True)
    decay, rest = no_weight_decay_groups(bert.named_parameters(), 0.01)
    # reading_comprehension's groups before: weight decay on matrices whose name has no "norm"
    hand = {n for n, p in bert.named_parameters() if p.dim() > 1 and "norm" not in n}
    names = {id(p): n for n, p in bert.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == hand and decay["weight_decay"] == 0.01
    assert rest["weight_decay"] == 0.0 and len(decay["params"]) + len(rest["params"]) == len(names)
    assert "embed.weight" in hand and not any(n.endswith("bias") for n in hand)
