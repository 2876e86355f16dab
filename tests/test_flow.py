"""Task ``flow`` (kexue.fm/archives/6482, 6377): the i-ResNet's identities, log-dets, inverse and bits/dim against
independent references (torch.linalg, torch.func / torch.autograd Jacobians, numerical integration), and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.lightning_modules.flow import FlowModel
from kexue.nn import flows, spectral_norm
from kexue.nn.flows import (
    ActNorm,
    InvertibleResidualBlock,
    InvertibleResNet,
    SpectralNormConv2d,
    SpectralNormLinear,
    bits_per_dim,
    dequantize,
    exact_logdet,
    hutchinson_logdet,
    inverse_logit_transform,
    logdet_power_series,
    logit_transform,
    residual_branch,
)
from kexue.platform.cli import main


def contraction(D: int, radius: float, seed: int = 0) -> torch.Tensor:
    """A random ``(D, D)`` float64 matrix of spectral norm ``radius``."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    return radius * A / torch.linalg.matrix_norm(A, ord=2)


def warmed(module: torch.nn.Module, x: torch.Tensor, steps: int = 30) -> torch.nn.Module:
    """``module`` after ``steps`` training forwards (the spectral norms' power iterations converge), in eval."""
    module.train()
    with torch.no_grad():
        for _ in range(steps):
            module(x)
    return module.eval()


def test_det_exp_equals_exp_trace() -> None:  # 6377's identity, on a non-symmetric matrix
    A = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.linalg.det(torch.linalg.matrix_exp(A)), torch.exp(torch.trace(A)))
    # ... hence log det(I + J) = tr(log(I + J)): with log(I + J) = Σ (-1)^{k+1} J^k / k (6482)
    J = contraction(5, 0.6)
    log_m = sum((-1) ** (k + 1) * torch.linalg.matrix_power(J, k) / k for k in range(1, 80))
    torch.testing.assert_close(torch.linalg.matrix_exp(log_m), torch.eye(5, dtype=torch.float64) + J)


@pytest.mark.parametrize("radius", [0.3, 0.9])
def test_power_series_matches_slogdet(radius: float) -> None:
    J = torch.stack([contraction(6, radius, seed) for seed in range(3)])  # (3, 6, 6)
    exact = torch.linalg.slogdet(torch.eye(6, dtype=torch.float64) + J)[1]
    n = 400 if radius > 0.5 else 60
    torch.testing.assert_close(logdet_power_series(J, n), exact, atol=1e-9, rtol=0)
    tail = 6 * sum(radius ** k / k for k in range(4, 2000))  # |Σ_{k>3}| <= D Σ ρ^k / k
    assert (logdet_power_series(J, 3) - exact).abs().max() <= tail
    assert (logdet_power_series(J, 1) - exact).abs().max() > 1e-3  # the test can tell one term from the series


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_estimate_within_standard_error_of_slogdet(probe: str) -> None:
    torch.manual_seed(0)
    W = contraction(4, 0.5).float()  # g(x) = tanh(x W^T) / 1: Lip <= 0.5
    x = torch.randn(3, 4, requires_grad=True)
    gx = torch.tanh(x @ W.T)  # (3, 4)
    samples = hutchinson_logdet(gx, x, n_terms=20, n_probes=1000, probe=probe, return_samples=True)  # (1000, 3)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])
    J = torch.func.vmap(torch.func.jacrev(lambda v: torch.tanh(v @ W.T)))(x.detach())  # (3, 4, 4)
    exact = torch.linalg.slogdet(torch.eye(4) + J)[1]
    assert ((mean - exact).abs() <= 4 * se + 1e-5).all(), (mean, exact, se)  # truncation after 20 terms: ~1e-8
    few = hutchinson_logdet(gx, x, n_terms=1, n_probes=1000, probe=probe)  # one term: biased, and detectably so
    assert ((few - exact).abs() > 4 * se).any()


def test_exact_logdet_matches_autograd_jacobian() -> None:
    torch.manual_seed(0)
    g = warmed(residual_branch([3], hidden=8, lipschitz=0.7), torch.randn(16, 3))
    x = torch.randn(5, 3)
    ref = torch.stack([torch.linalg.slogdet(torch.autograd.functional.jacobian(lambda v: v + g(v[None])[0], row))[1]
                       for row in x])
    torch.testing.assert_close(exact_logdet(g, x), ref, atol=1e-5, rtol=1e-5)


def test_spectral_norms_are_the_coefficient() -> None:
    torch.manual_seed(0)
    lin = warmed(SpectralNormLinear(6, 9, coeff=0.8), torch.randn(4, 6))
    W = torch.autograd.functional.jacobian(lambda v: lin(v[None])[0], torch.zeros(6))  # (9, 6): the map itself
    assert abs(torch.linalg.matrix_norm(W, ord=2).item() - 0.8) < 1e-3
    conv = warmed(SpectralNormConv2d(2, 3, 3, (5, 5), coeff=0.7), torch.randn(2, 2, 5, 5), steps=60)
    M = torch.autograd.functional.jacobian(lambda v: conv(v.view(1, 2, 5, 5)).flatten(), torch.zeros(50))  # (75, 50)
    assert abs(torch.linalg.matrix_norm(M, ord=2).item() - 0.7) < 1e-2  # the operator's norm, not the kernel's


def layer_matrix(layer: torch.nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The matrix of a (bias-affine) layer's map, ``(out, in)``, by autograd: independent of the layer's own norm."""
    n = math.prod(in_shape)
    return torch.autograd.functional.jacobian(lambda v: layer(v.view(1, *in_shape)).flatten(), torch.zeros(n))


@pytest.mark.parametrize("network, shape, exact_max", [("mlp", [2], 256), ("mlp", [48], 0), ("conv", [1, 5, 5], 256)])
def test_lipschitz_bound_holds_after_training(network: str, shape: list[int], exact_max: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # 6482's guarantee Lip(g) <= c, measured on a flow trained at the task's learning rates (moons 3e-3, digits 2e-3)
    # by norms the layers do not compute themselves. exact_max 0 sends every linear layer through subspace iteration.
    # With torch's one power iteration per step the same check measured 1.02-1.26 x the target.
    monkeypatch.setattr(spectral_norm, "EXACT_MAX_FEATURES", exact_max)  # where the layers read it
    torch.manual_seed(0)
    c, hidden = 0.95, 64 if network == "mlp" else 4
    net = InvertibleResNet(shape, network, num_blocks=2, hidden=hidden, lipschitz=c, exact_logdet=False).train()
    data = torch.randn(512, *shape) @ torch.randn(shape[-1], shape[-1]) if network == "mlp" else torch.rand(512, *shape)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3 if shape == [2] else 2e-3)
    layers = [m for m in net.modules() if isinstance(m, (SpectralNormLinear, SpectralNormConv2d))]
    worst_training = 0.0
    for step in range(40):
        loss = -net.log_prob(data[step * 12 % 500:][:12]).mean()
        optimizer.zero_grad(), loss.backward()
        if network == "mlp":  # the norm of the weight each linear layer applied in this training step
            with torch.no_grad():
                ratios = [torch.linalg.matrix_norm(m.weight, ord=2) / (m.v @ m.weight @ m.u) for m in layers]
            worst_training = max(worst_training, *(r.item() for r in ratios))
        optimizer.step()
    assert worst_training <= 1 + 1e-4  # exact vectors or a converged subspace: within POWER_TOL-sized slack
    net.eval()
    for layer in layers:  # evaluation's weights: norm coeff, to float32 rounding (conv: iterated to 1e-7 growth)
        in_shape = tuple(layer.u.shape)
        norm = torch.linalg.matrix_norm(layer_matrix(layer, in_shape), ord=2).item()
        assert norm <= layer.coeff * (1 + 1e-5), (norm, layer.coeff)
    x = data[:4]
    for block in net.blocks:  # the whole branch: its Jacobian's norm at a few points
        J = flows.jacobian(block.g, x)  # (4, D, D)
        assert torch.linalg.matrix_norm(J, ord=2).max().item() <= c * (1 + 1e-5)
    z, _ = net(x)
    assert (net.inverse(z.detach(), iterations=300) - x).abs().max() <= 1e-4  # the fixed point is still reached


def test_linear_layer_loads_weights_saved_with_torchs_spectral_norm() -> None:
    # Checkpoints written before issue 29 held torch's parametrisation (linear.parametrizations.weight.original...).
    old = torch.nn.Module()
    old.linear = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(3, 4))
    layer = SpectralNormLinear(3, 4)
    layer.load_state_dict(old.state_dict())  # strict: every key found a place
    torch.testing.assert_close(layer.weight, old.linear.parametrizations.weight.original)
    torch.testing.assert_close(layer.bias, old.linear.bias)


@pytest.mark.parametrize("network, shape", [("mlp", [2]), ("mlp", [1, 4, 4]), ("conv", [1, 6, 6])])
def test_inverse_reconstructs(network: str, shape: list[int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, *shape) * 2
    block = warmed(InvertibleResidualBlock(residual_branch(shape, network, hidden=16, lipschitz=0.9)), x, steps=3)
    y, _ = block(x, exact=True)
    assert (block.inverse(y, iterations=200) - x).abs().max() <= 1e-4
    flow = warmed(InvertibleResNet(shape, network, num_blocks=3, hidden=16, exact_logdet=False), x, steps=3)
    z, _ = flow(x)
    assert (flow.inverse(z.detach(), iterations=200) - x).abs().max() <= 1e-4
    assert (flow.inverse(z.detach(), iterations=1) - x).abs().max() > 1e-3  # one iteration is not enough


def test_flow_logdet_matches_the_whole_maps_jacobian() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 1, 2, 2)
    flow = warmed(InvertibleResNet([1, 2, 2], num_blocks=3, hidden=8), x, steps=5)
    _, logdet = flow(x, exact=True)
    J = torch.stack([torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 1, 2, 2), exact=True)[0].flatten(),
                                                        row.flatten()) for row in x])  # (6, 4, 4)
    ref = torch.linalg.slogdet(J)[1]
    torch.testing.assert_close(logdet, ref, atol=1e-4, rtol=1e-4)  # blocks + ActNorm (initialised: not identity)
    torch.manual_seed(1)
    estimates = torch.stack([flow(x, exact=False, n_terms=30)[1].detach() for _ in range(100)])  # (100, 6), 1 probe each
    se = estimates.std(0) / math.sqrt(100)
    assert ((estimates.mean(0) - ref).abs() <= 4 * se + 1e-4).all()


def test_2d_density_integrates_to_one() -> None:
    torch.manual_seed(0)
    model = FlowModel(InvertibleResNet([2], num_blocks=2, hidden=16), grid_size=101)
    warmed(model.net, torch.randn(64, 2) * 0.8, steps=3)
    logp, axis = model.density_grid(lim=7.0)
    step = (axis[1] - axis[0]).item()
    assert abs(logp.exp().sum().item() * step**2 - 1) < 2e-2


def test_actnorm_logdet_and_inverse() -> None:
    x = torch.randn(4, 3, 2, 2) * 3 + 1
    norm = ActNorm(3).train()
    y, logdet = norm(x)
    assert y.mean((0, 2, 3)).abs().max() < 1e-5  # data-dependent initialisation
    J = torch.autograd.functional.jacobian(lambda v: norm(v.view(1, 3, 2, 2))[0].flatten(), x[0].flatten())
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(J)[1])
    torch.testing.assert_close(norm.inverse(y), x, atol=1e-5, rtol=1e-5)


def test_dequantisation_and_bits_per_dim() -> None:
    levels, D = 17, 64
    x = torch.randint(0, levels, (500, D)).float() / (levels - 1)  # digits-like grey levels
    z = dequantize(x, levels, torch.Generator().manual_seed(0))
    assert ((z >= 0) & (z < 1)).all()
    assert torch.equal(torch.floor(z * levels), torch.round(x * (levels - 1)))  # each level keeps its cube
    # The uniform density on [0, 1)^D (nll 0) gives every image probability levels^-D: log2(levels) bits/dim.
    assert abs(bits_per_dim(0.0, D, levels) - math.log2(levels)) < 1e-12
    # A density constant on each cube, p = P(level) * levels^D: bits/dim = -log2 P(image) / D exactly.
    probs = torch.distributions.Dirichlet(torch.ones(levels)).sample()  # per-pixel level probabilities
    level = torch.round(x * (levels - 1)).long()  # (500, D)
    nll = -(torch.log(probs[level]) + math.log(levels)).sum(1)  # (500,): -log p(z) in nats
    ref = -torch.log2(probs[level]).sum(1) / D
    torch.testing.assert_close(bits_per_dim(nll, D, levels), ref)


def test_logit_transform_logdet_and_inverse() -> None:
    z = torch.rand(3, 5)
    for alpha in (0.0, 0.05):
        y, logdet = logit_transform(z, alpha)
        J = torch.stack([torch.autograd.functional.jacobian(lambda v, a=alpha: logit_transform(v[None], a)[0][0], r)
                         for r in z])
        torch.testing.assert_close(logdet, torch.linalg.slogdet(J)[1])
        torch.testing.assert_close(inverse_logit_transform(y, alpha), z)


def test_image_nll_is_the_flow_nll_of_the_logit_plus_its_logdet() -> None:
    torch.manual_seed(0)
    net = InvertibleResNet([1, 3, 3], num_blocks=2, hidden=8, exact_logdet=False)
    model = FlowModel(net, levels=5).eval()  # 9 features <= exact_max_dim: evaluation takes the exact log-det
    x = torch.randint(0, 5, (4, 1, 3, 3)).float() / 4
    nll = model.nll(x, torch.Generator().manual_seed(3))
    y, logdet = logit_transform(dequantize(x, 5, torch.Generator().manual_seed(3)), 0.05)
    torch.testing.assert_close(nll, -(net.log_prob(y, exact=True) + logdet))


def test_evaluation_options_choose_the_logdet() -> None:
    # The module, not the network, decides how evaluation computes the log-det: exact up to exact_max_dim, else the
    # series with eval_terms terms (one term is detectably worse than the exact value on a trained-size stack).
    torch.manual_seed(0)
    net = warmed(InvertibleResNet([4], num_blocks=2, hidden=8, exact_logdet=False), torch.randn(32, 4), steps=5)
    x = torch.randn(6, 4)
    exact = net.log_prob(x, exact=True).detach()
    torch.testing.assert_close(FlowModel(net).eval().log_prob(x).detach(), exact)
    torch.manual_seed(1)
    one_term = FlowModel(net, exact_max_dim=1, eval_terms=1).eval().log_prob(x).detach()
    torch.manual_seed(1)
    torch.testing.assert_close(one_term, net.log_prob(x, exact=False, n_terms=1).detach())
    assert not torch.allclose(one_term, exact, atol=1e-4)


@pytest.mark.parametrize("kwargs, fragment", [({"lipschitz": 1.0}, "lipschitz must be in (0, 1)"),
                                              ({"lipschitz": 0.0}, "lipschitz must be in (0, 1)"),
                                              ({"n_terms": 0}, "n_terms must be >= 1"),
                                              ({"n_probes": -1}, "n_probes must be >= 1"),
                                              ({"shape": None}, "shape is required")])
def test_network_rejects(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        InvertibleResNet(**{"shape": [2], **kwargs})


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_digits_preset_runs_and_reports_bits_per_dim(network: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "flow", "--config", "flow_digits", "--model.net.num_blocks", "2", "--model.net.hidden",
                 "16", "--model.net.network", network, "--trainer.fast_dev_run=1", "--logger", "csv"]) == 0
    metrics = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("test/"))
    assert 0 < float(metrics["test/bits_per_dim"]) < 20


def test_evaluation_knobs_are_the_users_at_test_time(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # The checkpoint fixes the network (2 blocks, not the default 16) but not `runtime_arguments`: a 1-term series
    # at test must change the figure the exact log-det gave (it did not when the checkpoint's hyperparameters won
    # over the user's evaluation options).
    common = ["--logger", "none", "--trainer.enable_progress_bar=false", "--trainer.default_root_dir", str(tmp_path),
              "--trainer.limit_test_batches=1"]
    assert main(["run", "flow", *common, "--model.net.num_blocks=2", "--model.net.hidden=8",
                 "--model.net.exact_logdet=false", "--trainer.max_steps=2", "--trainer.limit_val_batches=1"]) == 0
    capsys.readouterr()
    ckpt = str(next(tmp_path.rglob("last*.ckpt")))

    def test_nll(*extra: str) -> float:
        assert main(["test", "flow", *common, "--ckpt_path", ckpt, *extra]) == 0
        return float(next(line.split()[1] for line in capsys.readouterr().out.splitlines()
                          if line.startswith("test/nll ")))

    exact = test_nll()
    assert test_nll("--model.exact_max_dim=1", "--model.eval_terms=1") != pytest.approx(exact, abs=1e-4)
    assert test_nll() == pytest.approx(exact, abs=1e-6)
