"""Invertible ResNet (i-ResNet): residual blocks ``y = x + g(x)`` with a contractive ``g``, their inverse by
fixed-point iteration and their log-determinant by a power series of Hutchinson-estimated traces.

Posts: 细水长flow之可逆ResNet:极致的暴力美学 (https://kexue.fm/archives/6482) and 恒等式 det(exp(A)) = exp(Tr(A))
赏析 (https://kexue.fm/archives/6377); paper: Behrmann et al. 2019, *Invertible Residual Networks*.

Why it works: if ``Lip(g) < 1`` then ``x -> x + g(x)`` is a bijection (Banach: ``x = y - g(x)`` has one fixed point,
reached by iterating); and since ``det(exp(A)) = exp(tr(A))``, ``log det(I + J) = tr(log(I + J)) = Σ_k
(-1)^{k+1} tr(J^k) / k``, a series that converges because ``‖J‖ <= Lip(g) < 1``. Each ``tr(J^k)`` is estimated
without ever forming ``J``: ``tr(A) = E[vᵀ A v]`` for probes with ``E[v vᵀ] = I`` (Hutchinson), and ``vᵀ J^k`` is
``k`` vector-Jacobian products.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from kexue.nn.spectral_norm import (  # re-exported: the flow's layers
    SpectralNorm,
    SpectralNormConv2d,
    SpectralNormLinear,
)


def logdet_power_series(J: Tensor, n_terms: int) -> Tensor:
    """``Σ_{k=1..n_terms} (-1)^{k+1} tr(J^k) / k`` of square matrices ``J: (..., D, D)`` -> ``(...)``: the truncated
    series of ``log det(I + J)``, exact in the limit when the spectral radius of ``J`` is below 1 (6482)."""
    out = torch.zeros(J.shape[:-2], dtype=J.dtype, device=J.device)
    power = J
    for k in range(1, n_terms + 1):
        out = out + (-1) ** (k + 1) * torch.diagonal(power, dim1=-2, dim2=-1).sum(-1) / k
        power = power @ J  # (..., D, D): J^{k+1}
    return out


def _probes(x: Tensor, n_probes: int, kind: str) -> Tensor:
    """``(n_probes, *x.shape)`` Rademacher (±1) or standard Gaussian probes: ``E[v vᵀ] = I`` either way."""
    shape = (n_probes, *x.shape)
    if kind == "rademacher":
        return torch.randint(0, 2, shape, device=x.device).to(x.dtype) * 2 - 1
    return torch.randn(shape, device=x.device, dtype=x.dtype)


def hutchinson_logdet(gx: Tensor, x: Tensor, n_terms: int, n_probes: int, create_graph: bool = False,
                      probe: Literal["rademacher", "gaussian"] = "rademacher", return_samples: bool = False) -> Tensor:
    """Estimate ``log|det(I + ∂g/∂x)|`` per example by the truncated power series with Hutchinson traces (6482).

    ``gx = g(x)`` must have been computed from ``x`` (``x.requires_grad``), both ``(B, ...)``, with no coupling
    between examples. ``vᵀ J^k`` is ``k`` vector-Jacobian products; ``tr(J^k) ≈ mean over probes of (vᵀ J^k) · v``.
    ``create_graph``: keep the graph so the estimate can be trained through. Returns ``(B,)``, or with
    ``return_samples`` the ``(n_probes, B)`` one-probe estimates (their mean is the estimate; their spread gives its
    standard error).
    """
    if n_terms < 1 or n_probes < 1:
        raise ValueError(f"n_terms and n_probes must be >= 1, got {n_terms}, {n_probes}")
    samples = []
    for v in _probes(x, n_probes, probe):  # (B, ...) each
        w, total = v, torch.zeros(x.shape[0], device=x.device, dtype=torch.float32)
        for k in range(1, n_terms + 1):
            (w,) = torch.autograd.grad(gx, x, w, create_graph=create_graph, retain_graph=True)  # vᵀ J^k: (B, ...)
            total = total + (-1) ** (k + 1) * (w * v).flatten(1).sum(1).float() / k  # (B,)
        samples.append(total)
    samples_t = torch.stack(samples)  # (n_probes, B)
    return samples_t if return_samples else samples_t.mean(0)


def jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-example Jacobians ``(B, D, D)`` of ``fn`` (``(B, ...) -> (B, ...)``, examples independent) at ``x``, by
    ``torch.func.vmap(jacrev)``; differentiable with respect to ``fn``'s parameters. ``D`` = features per example."""
    shape = x.shape[1:]

    def one(v: Tensor) -> Tensor:  # (D,) -> (D,)
        return fn(v.reshape(1, *shape)).reshape(-1)

    return torch.func.vmap(torch.func.jacrev(one))(x.reshape(x.shape[0], -1))  # (B, D, D)


def exact_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``log|det(I + ∂fn/∂x)|`` per example ``(B,)`` by the full Jacobian and ``torch.linalg.slogdet`` (in float32):
    the exact path, cheap in small dimensions (2-D points, 8 × 8 digits)."""
    J = jacobian(fn, x).float()  # (B, D, D)
    return torch.linalg.slogdet(torch.eye(J.shape[-1], device=J.device) + J)[1]  # (B,)


def dequantize(x: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation of images ``x`` in [0, 1] with ``levels`` grey levels (``x = level / (levels - 1)``):
    ``(level + u) / levels`` with ``u ~ U[0, 1)``, a continuous variable in [0, 1) whose density on each level's
    cube of side ``1 / levels`` averages to that level's probability (6482's image experiments)."""
    u = torch.rand(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
    return (x * (levels - 1) + u.to(device=x.device, dtype=x.dtype)) / levels


def logit_transform(z: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """``y = logit(α + (1 - 2α) z)`` of ``z`` in [0, 1) and its log-determinant ``(B,)``: images spread over the
    real line before the flow (RealNVP's preprocessing). ``alpha = 0``: ``y = z - 1/2``, log-det 0."""
    if alpha <= 0:
        return z - 0.5, torch.zeros(z.shape[0], device=z.device)
    s = alpha + (1 - 2 * alpha) * z
    logdet = (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)  # (B,)
    return torch.log(s) - torch.log1p(-s), logdet


def inverse_logit_transform(y: Tensor, alpha: float) -> Tensor:
    """The inverse of :func:`logit_transform`: values in [0, 1] (clamped)."""
    z = y + 0.5 if alpha <= 0 else (torch.sigmoid(y) - alpha) / (1 - 2 * alpha)
    return z.clamp(0, 1)


def bits_per_dim(nll: Tensor | float, dim: int, levels: int) -> Tensor | float:
    """Bits per dimension of discrete images from the NLL (nats per image) of their dequantised density on [0, 1)^D:
    each level's cube has volume ``levels^-D``, so ``-log P(image) = nll + D log(levels)``, divided by ``D ln 2``."""
    return (nll + dim * math.log(levels)) / (dim * math.log(2))


class ActNorm(nn.Module):
    """Per-channel affine ``y = (x + b) * exp(s)`` (Glow), initialised on its first training batch to zero mean and
    unit variance per channel; ``x: (B, C)`` or ``(B, C, H, W)``. ``forward`` returns ``(y, logdet (B,))``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, t: Tensor, x: Tensor) -> Tensor:
        return t.view(1, -1, *([1] * (x.dim() - 2)))  # (1, C, 1, 1) or (1, C)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                dims = [d for d in range(x.dim()) if d != 1]
                self.bias.copy_(-x.mean(dims))
                self.log_scale.copy_(-x.std(dims).clamp_min(1e-3).log())
                self.initialized.fill_(True)
        y = (x + self._view(self.bias, x)) * self._view(self.log_scale, x).exp()
        pixels = x[0, 0].numel()
        return y, (self.log_scale.sum() * pixels).expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y * self._view(-self.log_scale, y).exp() - self._view(self.bias, y)


class InvertibleResidualBlock(nn.Module):
    """``y = x + g(x)`` with ``Lip(g) < 1`` (every layer of ``g`` spectrally normalised, 1-Lipschitz activations).

    Args:
        g: the residual branch, ``(B, ...) -> (B, ...)`` of the same shape, examples independent.
        n_terms, n_probes: power-series terms and Hutchinson probes of the estimated log-determinant.
        probe: ``"rademacher"`` or ``"gaussian"``.

    ``forward(x, exact=False)`` returns ``(y, logdet (B,))``: the estimate (:func:`hutchinson_logdet`, trained
    through while ``self.training``) or, with ``exact``, :func:`exact_logdet`. ``inverse(y)`` iterates
    ``x <- y - g(x)`` from ``x = y`` (6482): the error shrinks by ``Lip(g)`` every iteration.
    """

    def __init__(self, g: nn.Module, n_terms: int = 5, n_probes: int = 1,
                 probe: Literal["rademacher", "gaussian"] = "rademacher") -> None:
        super().__init__()
        if n_terms < 1 or n_probes < 1:
            raise ValueError(f"n_terms and n_probes must be >= 1, got {n_terms}, {n_probes}")
        self.g, self.n_terms, self.n_probes, self.probe = g, n_terms, n_probes, probe

    def forward(self, x: Tensor, exact: bool = False, n_terms: int | None = None) -> tuple[Tensor, Tensor]:
        if exact:
            y = x + self.g(x)  # in training, the spectral norms' power iteration runs here, once
            training = self.g.training
            # g in eval: no power iteration, which a transform cannot mutate; frozen: in training, the normaliser of
            # the y just computed (differentiable), not evaluation's exact norm.
            frozen = [m for m in self.g.modules() if isinstance(m, SpectralNorm)] if training else []
            self.g.eval()
            for layer in frozen:
                layer.frozen = True
            try:
                return y, exact_logdet(self.g, x)
            finally:
                for layer in frozen:
                    layer.frozen = False
                self.g.train(training)
        with torch.enable_grad():  # the vector-Jacobian products need a graph, in evaluation too
            x_in = x if x.requires_grad else x.detach().requires_grad_()
            gx = self.g(x_in)
            logdet = hutchinson_logdet(gx, x_in, n_terms or self.n_terms, self.n_probes, self.training, self.probe)
        y = x_in + gx
        return (y, logdet) if self.training or x.requires_grad else (y.detach(), logdet.detach())

    @torch.no_grad()
    def inverse(self, y: Tensor, iterations: int = 100, tol: float = 1e-6) -> Tensor:
        """``x`` with ``x + g(x) = y`` by fixed-point iteration (at most ``iterations``; stops below ``tol``)."""
        x = y
        for _ in range(iterations):
            x_next = y - self.g(x)
            done = (x_next - x).abs().max() < tol
            x = x_next
            if done:
                break
        return x


def residual_branch(shape: list[int], network: Literal["mlp", "conv"] = "mlp", hidden: int = 32,
                    lipschitz: float = 0.9, n_power_iterations: int = 20) -> nn.Module:
    """The contractive ``g`` of one block for examples of ``shape`` (``[D]`` or ``[C, H, W]``): three spectrally
    normalised layers with ELU (1-Lipschitz) between them, of norms 1, 1 and ``c = lipschitz``, so ``Lip(g) <= c``
    (6482). (Behrmann et al. scale every layer by ``c``, which bounds ``Lip(g)`` by ``c³``: needlessly tight, and
    slower to learn on the 2-D sets here.) ``network``: ``"mlp"`` (examples flattened, ``hidden`` units) or
    ``"conv"`` (3×3 → 1×1 → 3×3 convolutions of ``hidden`` channels at full resolution, images only)."""
    c, h, n = lipschitz, hidden, n_power_iterations
    if network == "mlp":
        D = math.prod(shape)
        return nn.Sequential(nn.Flatten(), SpectralNormLinear(D, h, 1.0, n), nn.ELU(), SpectralNormLinear(h, h, 1.0, n),
                             nn.ELU(), SpectralNormLinear(h, D, c, n), nn.Unflatten(1, tuple(shape)))
    if len(shape) != 3:
        raise ValueError(f"network conv needs images (C, H, W), got data of shape {shape}")
    C, size = shape[0], (shape[1], shape[2])
    return nn.Sequential(SpectralNormConv2d(C, h, 3, size, 1.0, n), nn.ELU(), SpectralNormConv2d(h, h, 1, size, 1.0, n),
                         nn.ELU(), SpectralNormConv2d(h, C, 3, size, c, n))


class InvertibleResNet(nn.Module):
    """A stack of (ActNorm +) :class:`InvertibleResidualBlock` mapping data ``(B, *shape)`` to a standard Gaussian
    (6482): the flow task's network component (``--model.net.lipschitz 0.8``).

    Args:
        shape: ``[D]`` (points) or ``[C, H, W]`` (images) of one example; the flow task links it from
            ``data.data_shape``.
        network: ``"mlp"`` (examples flattened; points and small images) or ``"conv"`` (the i-ResNet's
            convolutional branch, for images): see :func:`residual_branch`.
        num_blocks: residual blocks. hidden: width (MLP units or conv channels) of each branch.
        lipschitz: the Lipschitz bound ``c`` of every block's ``g``, in (0, 1).
        n_power_iterations: at most this many power iterations per training step of each spectral norm (fewer
            once the estimate has converged; evaluation uses the exact norm: see :class:`SpectralNormLinear`).
        n_terms, n_probes: power-series terms and Hutchinson probes of the estimated log-det (the default of
            :meth:`forward`'s ``n_terms``; evaluation passes its own).
        probe: ``"rademacher"`` or ``"gaussian"`` probes.
        exact_logdet: the exact Jacobian log-det (``slogdet``) when :meth:`forward` is not told; cheap for 2-D points.
        actnorm: an :class:`ActNorm` before every block.

    ``forward(x, exact=None, n_terms=None)`` returns ``(z, logdet (B,))`` with ``log p(x) = log N(z; 0, I) +
    logdet``. How to evaluate (exact or estimated, how many terms, inverse iterations) is the caller's choice per
    call: the flow task keeps it a LightningModule option, so a checkpoint can be evaluated differently.
    """

    def __init__(self, shape: list[int] | None = None, network: Literal["mlp", "conv"] = "mlp", num_blocks: int = 16,
                 hidden: int = 32, lipschitz: float = 0.9, n_power_iterations: int = 20, n_terms: int = 5,
                 n_probes: int = 1, probe: Literal["rademacher", "gaussian"] = "rademacher", exact_logdet: bool = True,
                 actnorm: bool = True) -> None:
        super().__init__()
        if not shape:
            raise ValueError("shape is required: [D] points or [C, H, W] images (the flow task links it from "
                             "data.data_shape)")
        if not 0 < lipschitz < 1:
            raise ValueError(f"lipschitz must be in (0, 1) (the inverse and the log-det series need Lip(g) < 1), "
                             f"got {lipschitz}")
        for name, value in (("num_blocks", num_blocks), ("hidden", hidden), ("n_power_iterations", n_power_iterations),
                            ("n_terms", n_terms), ("n_probes", n_probes)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.shape, self.exact_logdet = list(shape), exact_logdet
        self.dim = math.prod(self.shape)
        channels = self.shape[0]
        self.norms = nn.ModuleList(ActNorm(channels) if actnorm else nn.Identity() for _ in range(num_blocks))
        self.blocks = nn.ModuleList(
            InvertibleResidualBlock(residual_branch(self.shape, network, hidden, lipschitz, n_power_iterations),
                                    n_terms, n_probes, probe)
            for _ in range(num_blocks))

    def forward(self, x: Tensor, exact: bool | None = None, n_terms: int | None = None) -> tuple[Tensor, Tensor]:
        """``(z (B, *shape), logdet (B,))`` of ``x (B, *shape)``: the log-det exact (``exact``; ``None``: the
        ``exact_logdet`` option) or estimated with ``n_terms`` series terms (``None``: the ``n_terms`` option)."""
        exact = self.exact_logdet if exact is None else exact
        logdet = torch.zeros(x.shape[0], device=x.device)
        for norm, block in zip(self.norms, self.blocks):
            if isinstance(norm, ActNorm):
                x, ld = norm(x)
                logdet = logdet + ld
            x, ld = block(x, exact=exact, n_terms=n_terms)
            logdet = logdet + ld
        return x, logdet  # (B, *shape), (B,)

    def log_prob(self, x: Tensor, exact: bool | None = None, n_terms: int | None = None) -> Tensor:
        """``log p(x)`` per example ``(B,)``: standard-normal log-density of ``z`` plus the log-det."""
        z, logdet = self(x, exact, n_terms)
        log_normal = -0.5 * (z.float().flatten(1) ** 2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)
        return log_normal + logdet

    @torch.no_grad()
    def inverse(self, z: Tensor, iterations: int = 100) -> Tensor:
        """Data ``(B, *shape)`` of latents ``z (B, *shape)``: each block inverted by ``iterations`` fixed-point
        iterations at most."""
        for norm, block in zip(reversed(self.norms), reversed(self.blocks)):
            z = block.inverse(z, iterations)
            if isinstance(norm, ActNorm):
                z = norm.inverse(z)
        return z

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, iterations: int = 100) -> Tensor:
        """``n`` samples ``(n, *shape)``: the inverse of Gaussian draws (scaled by ``temperature``)."""
        device = next(self.parameters()).device
        return self.inverse(temperature * torch.randn(n, *self.shape, device=device), iterations)


__all__ = [
    "ActNorm", "bits_per_dim", "dequantize", "exact_logdet", "hutchinson_logdet", "inverse_logit_transform",
    "InvertibleResidualBlock", "InvertibleResNet", "jacobian", "logdet_power_series",
    "logit_transform", "residual_branch", "SpectralNormConv2d", "SpectralNormLinear",
]
