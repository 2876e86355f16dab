"""kexue.optim against independent references: torch's own optimizers, hand-unrolled steps, np.interp."""

from __future__ import annotations

import copy
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kexue.optim import (
    AdaFactor,
    DecoupledWeightDecay,
    LayerAdaptation,
    LazyUpdates,
    Lookahead,
    PiecewiseLinearLR,
    build_optimizer,
    configure_optimizers,
    layerwise_lr_groups,
    no_weight_decay_groups,
    scaled_param_groups,
)


def _loss(params: list[torch.Tensor], step: int) -> torch.Tensor:
    """A non-quadratic loss whose gradients change every step."""
    return sum(((p * (1 + step)).sin() * torch.linspace(-1, 2, p.numel()).view_as(p)).sum() for p in params)


def _trajectory(make, shapes, steps: int = 4, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g).requires_grad_() for s in shapes]
    opt = make(params)
    for t in range(steps):
        opt.zero_grad()
        _loss(params, t).backward()
        opt.step()
    return [p.detach() for p in params]


def _close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> None:
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


def test_adafactor_without_extras_is_torchs() -> None:
    shapes = [(6, 5), (5,), (2, 3, 4)]
    ours = _trajectory(lambda p: AdaFactor(p, min_dim_size_to_factor=0), shapes)
    torchs = _trajectory(lambda p: torch.optim.Adafactor(p, foreach=False), shapes)
    _close(ours, torchs)


def _hand_adafactor(w: torch.Tensor, grads: list[torch.Tensor], beta1: float, factored: bool) -> torch.Tensor:
    """The post's algorithm written out step by step (float64), independent of the optimizer's code."""
    w = w.double().clone()
    r = torch.zeros(w.shape[0], dtype=torch.float64)
    c = torch.zeros(w.shape[1], dtype=torch.float64)
    v = torch.zeros_like(w)
    m = torch.zeros_like(w)
    eps1 = torch.finfo(torch.float32).eps
    for t, g in enumerate(grads, start=1):
        g = g.double()
        beta2 = 1 - t**-0.8
        if factored:
            r = beta2 * r + (1 - beta2) * (g**2).mean(1)
            c = beta2 * c + (1 - beta2) * (g**2).mean(0)
            vhat = torch.outer(r, c) / max(r.mean().item(), eps1)
        else:
            v = beta2 * v + (1 - beta2) * g**2
            vhat = v
        u = g / vhat.clamp(min=eps1**2).sqrt()
        u = u / max(1.0, math.sqrt((u**2).mean().item()))
        m = beta1 * m + (1 - beta1) * u
        rho = min(1e-2, 1 / math.sqrt(t))
        alpha = max(1e-3, math.sqrt((w**2).mean().item())) * rho
        w = w - alpha * m
    return w.float()


@pytest.mark.parametrize("shape, factored", [((130, 128), True), ((127, 200), False)])
def test_adafactor_matches_hand_unrolled_steps(shape: tuple[int, int], factored: bool) -> None:
    g = torch.Generator().manual_seed(1)
    w0 = torch.randn(*shape, generator=g) * 0.1
    grads = [torch.randn(*shape, generator=g) * s for s in (1.0, 0.1, 3.0)]
    w = w0.clone().requires_grad_()
    opt = AdaFactor([w], beta1=0.9)
    for grad in grads:
        w.grad = grad.clone()
        opt.step()
    state = opt.state[w]
    assert ("row_var" in state) == factored and ("variance" in state) != factored
    torch.testing.assert_close(w.detach(), _hand_adafactor(w0, grads, 0.9, factored), atol=1e-6, rtol=1e-5)


def test_adafactor_state_is_under_2_percent_of_adams() -> None:
    def state_bytes(opt: torch.optim.Optimizer) -> int:
        return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))

    sizes = {}
    for name, make in [("adam", lambda p: torch.optim.Adam(p)), ("adafactor", lambda p: AdaFactor(p))]:
        w = torch.zeros(1024, 1024, requires_grad=True)
        opt = make([w])
        w.grad = torch.ones_like(w)
        opt.step()
        sizes[name] = state_bytes(opt)
    assert sizes["adafactor"] / sizes["adam"] <= 0.02, sizes


def test_decoupled_weight_decay_around_adam_is_adamw() -> None:
    shapes = [(4, 3), (3, 5)]
    ours = _trajectory(
        lambda p: DecoupledWeightDecay(
            p, {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.1}}, weight_decay=0.3, exclude_1d=False
        ),
        shapes,
    )
    torchs = _trajectory(lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.3), shapes)
    _close(ours, torchs)


def test_decoupled_weight_decay_leaves_biases() -> None:
    bias = torch.ones(3, requires_grad=True)
    opt = DecoupledWeightDecay([bias], "torch.optim.SGD", weight_decay=0.5)
    opt.param_groups[0]["lr"] = 0.1
    bias.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(bias.detach(), torch.ones(3))


def test_layer_adaptation_steps_lr_times_weight_norm() -> None:
    g = torch.Generator().manual_seed(2)
    w0, grad = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    w = w0.clone().requires_grad_()
    opt = LayerAdaptation([w], {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01}})
    w.grad = grad.clone()
    opt.step()
    expected = w0 - 0.01 * w0.norm() * grad / grad.norm()  # LAMB with SGD inside: ||step|| = lr ||w||
    torch.testing.assert_close(w.detach(), expected)


def test_lookahead_matches_hand_loop() -> None:
    shapes = [(3, 2)]
    ours = _trajectory(
        lambda p: Lookahead(p, {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}, k=2, alpha=0.5),
        shapes,
        steps=5,
    )
    g = torch.Generator().manual_seed(0)
    fast = torch.randn(3, 2, generator=g).requires_grad_()
    slow = fast.detach().clone()
    for t in range(5):
        fast.grad = None
        _loss([fast], t).backward()
        with torch.no_grad():
            fast -= 0.1 * fast.grad
            if (t + 1) % 2 == 0:
                slow += 0.5 * (fast - slow)
                fast.copy_(slow)
    _close(ours, [fast.detach()])


def test_lazy_updates_freeze_absent_rows_only() -> None:
    emb0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(3))

    def run(lazy: bool) -> torch.Tensor:
        emb = nn.Embedding.from_pretrained(emb0.clone(), freeze=False)
        opt = LazyUpdates(emb.parameters(), "torch.optim.Adam") if lazy else torch.optim.Adam(emb.parameters())
        for ids in ([1, 2], [3], [3]):
            opt.zero_grad()
            emb(torch.tensor(ids)).sum().backward()
            opt.step()
        return emb.weight.detach()

    lazy, eager = run(True), run(False)
    assert not torch.equal(eager[1], emb0[1])  # Adam's momentum keeps moving rows 1, 2 after they left
    one_step = nn.Embedding.from_pretrained(emb0.clone(), freeze=False)
    opt = torch.optim.Adam(one_step.parameters())
    one_step(torch.tensor([1, 2])).sum().backward()
    opt.step()
    torch.testing.assert_close(lazy[1:3], one_step.weight.detach()[1:3])  # moved once, when present
    torch.testing.assert_close(lazy[3], eager[3])  # present rows: the plain update
    assert torch.equal(lazy[[0, 4, 5]], emb0[[0, 4, 5]])


def test_piecewise_linear_lr_is_np_interp() -> None:
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=2.0)
    schedule = {0: 0.0, 10: 1.0, 30: 0.1}
    sched = PiecewiseLinearLR(opt, schedule)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = 2.0 * np.interp(np.arange(40), list(schedule), list(schedule.values()))
    np.testing.assert_allclose(lrs, expected, atol=1e-12)


def test_wrapper_state_dict_round_trip_resumes_exactly() -> None:
    def make(p):
        return Lookahead(p, {"class_path": "kexue.optim.AdaFactor", "init_args": {"beta1": 0.9}}, k=3)

    g = torch.Generator().manual_seed(4)
    w = torch.randn(4, 4, generator=g).requires_grad_()
    opt = make([w])
    for t in range(8):
        opt.zero_grad()
        _loss([w], t).backward()
        opt.step()
        if t == 3:
            saved_w, saved = w.detach().clone(), copy.deepcopy(opt.state_dict())  # live tensors otherwise
    w2 = saved_w.clone().requires_grad_()
    opt2 = make([w2])
    opt2.load_state_dict(saved)
    assert opt2.optimizer.param_groups is opt2.param_groups
    for t in range(4, 8):
        opt2.zero_grad()
        _loss([w2], t).backward()
        opt2.step()
    torch.testing.assert_close(w2.detach(), w.detach(), atol=0, rtol=0)


def test_build_optimizer_rejects_bad_specs() -> None:
    with pytest.raises(ValueError, match="cannot import"):
        build_optimizer([torch.zeros(1, requires_grad=True)], "torch.optim.Nope")
    with pytest.raises(ValueError, match="class_path"):
        build_optimizer([torch.zeros(1, requires_grad=True)], {"init_args": {}})


def test_lr_multipliers_scale_groups_before_the_scheduler() -> None:
    """configure_optimizers (what --optimizer installs): each group trains at lr * its multiplier, and the
    scheduler's base rates include it, with no scheduler internals touched (a hand-computed schedule)."""
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    module = nn.Module()
    module.parameter_groups = lambda: [{"params": [a]}, {"params": [b], "lr_multiplier": 10.0}]
    config = configure_optimizers(module, {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},
                                  {"class_path": "kexue.optim.PiecewiseLinearLR", "init_args": {"schedule": {0: 1.0, 10: 0.0}}})
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 1.0])
    assert "lr_multiplier" not in opt.param_groups[1]
    for _ in range(5):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.5])  # half-way down the linear decay


def test_parameter_group_helpers() -> None:
    groups = scaled_param_groups([{"params": [], "lr_multiplier": 3.0}, {"params": [], "weight_decay": 0.1}], 0.01)
    assert groups == [{"params": [], "lr": 0.03}, {"params": [], "weight_decay": 0.1, "lr": 0.01}]
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    decay, no_decay = no_weight_decay_groups(net.named_parameters(), 0.01)
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01
    layers = layerwise_lr_groups([net[0], net[1], net[2]], 0.5)
    assert [g["lr_multiplier"] for g in layers] == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_groups([net[0]], 0.0)


class _Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self.net(x).squeeze(-1) - y) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_gradient_accumulation_equals_one_big_batch() -> None:
    """Lightning's accumulate_grad_batches: k batches of b == one batch of k*b (no dropout, mean loss)."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, generator=g)
    finals = []
    for batch_size, accumulate in ((4, 4), (16, 1)):
        L.seed_everything(0)
        model = _Linear()
        trainer = L.Trainer(
            max_steps=1,
            accumulate_grad_batches=accumulate,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=batch_size))
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    L.seed_everything(0)
    start = torch.cat([p.detach().flatten() for p in _Linear().parameters()])
    assert not torch.allclose(finals[0], start)  # a step was taken
    torch.testing.assert_close(finals[0], finals[1], atol=1e-6, rtol=0)


def _cli(args: list[str]):
    from kexue.platform.lightning_cli import KexueCLI
    from kexue.registry import get_task

    return KexueCLI(get_task(args[0]), "fit", ["--trainer.logger=false", *args[1:]])


def test_cli_optimizer_keeps_the_crf_learning_rate_group() -> None:
    cli = _cli(
        [
            "cws",
            "--optimizer",
            "kexue.optim.Lookahead",
            "--optimizer.optimizer",
            "torch.optim.SGD",
            "--optimizer.optimizer.lr",
            "0.1",
            "--model.transition_lr_multiplier",
            "10",
            "--lr_scheduler",
            "kexue.optim.PiecewiseLinearLR",
            "--lr_scheduler.schedule",
            "{0: 1.0, 100: 0.5}",
        ]
    )
    config = cli.model.configure_optimizers()
    opt, scheduler = config["optimizer"], config["lr_scheduler"]
    assert isinstance(opt, Lookahead) and isinstance(opt.optimizer, torch.optim.SGD)
    assert scheduler["interval"] == "step"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 1.0])
    crf = {id(p) for p in cli.model.chain.parameters()}
    assert {id(p) for p in opt.param_groups[1]["params"]} == crf


def test_cli_scheduler_without_optimizer_is_one_line_error(capsys: pytest.CaptureFixture) -> None:
    from kexue.platform.cli import (
        main,  # in-process: the same one-line path as the command, without a fresh interpreter
    )

    assert main(["fit", "sentiment", "--config", "warmup", "--logger", "none"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("kexue: error: --lr_scheduler needs --optimizer")
