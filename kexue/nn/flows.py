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
import torch.nn.functional as F
from torch import Tensor, nn


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


# Subspace iteration stops once the sum of its Ritz values grows by less than this fraction per iteration: each Ritz
# value of a subspace iteration on AᵀA only grows, so the top one (the estimate of σ²) grew by less than that sum did.
# Evaluation's convolution norm iterates to EVAL_TOL.
POWER_TOL, EVAL_TOL = 1e-5, 1e-7
# A linear layer whose smaller side has at most this many features gets its exact top singular vectors in every
# training step (eigh of the smaller Gram matrix: ≈ 4 ms at 256 on one CPU thread, the cost of 50 power iterations);
# a larger one iterates a subspace of SUBSPACE vectors (the top of a spectrally normalised weight is nearly flat, so
# one vector tracks it badly: measured on 512 units at lr 1e-3, 1.04 × the norm with one, 1.00001 × with 8).
EXACT_MAX_FEATURES, SUBSPACE, EVAL_SUBSPACE = 256, 8, 8


class _SpectralNorm(nn.Module):
    """A linear operator ``A`` (a weight matrix, a convolution) used as ``coeff · A / σ(A)``: operator norm ``coeff``.

    Training: ``σ = vᵀ A u`` (differentiable in ``A``) with unit vectors ``u, v`` (buffers) from
    :meth:`training_vectors`: subspace iteration from the last step's ``subspace`` vectors (Rayleigh-Ritz; one
    vector is power iteration) until it converges (:data:`POWER_TOL`) or ``n_power_iterations`` ran, or exact
    vectors (small linear layers). An iterated estimate never exceeds ``σ(A)``, so it sets the norm *above*
    ``coeff``: one power iteration per step (torch's ``spectral_norm``, used before) left 256-unit layers
    1.26 × their target after 40 steps at the digits preset's learning rate. Evaluation (``eval()``): ``σ`` is the
    operator's norm by :meth:`exact_sigma`, computed once per weight version; an evaluated, inverted or sampled flow
    has the norm ``coeff`` it documents, so ``Lip(g) <= c`` holds (6482). Subclasses give ``weight``, the operator on
    a batch of vectors and its adjoint.
    """

    def __init__(self, coeff: float, n_power_iterations: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 subspace: int) -> None:
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.coeff, self.n_power_iterations = coeff, n_power_iterations
        self.frozen = False  # eval() with the training normaliser: see InvertibleResidualBlock.forward
        self._sigma_cache: tuple[tuple, Tensor] | None = None
        self.register_buffer("u", F.normalize(torch.randn(math.prod(in_shape)), dim=0).view(in_shape))  # right
        self.register_buffer("v", torch.zeros(out_shape))  # left singular vector
        # Not saved: a resumed run starts it afresh and iterates it back within a few steps.
        basis = torch.linalg.qr(torch.randn(math.prod(in_shape), min(subspace, math.prod(in_shape))))[0]
        self.register_buffer("basis", basis.T.reshape(-1, *in_shape), persistent=False)  # (k, *in), orthonormal

    def operator(self, x: Tensor, weight: Tensor) -> Tensor:
        """``A x`` of a batch of vectors ``(k, *in) -> (k, *out)``."""
        raise NotImplementedError

    def adjoint(self, y: Tensor, weight: Tensor) -> Tensor:
        """``Aᵀ y`` of a batch of vectors ``(k, *out) -> (k, *in)``."""
        raise NotImplementedError

    @torch.no_grad()
    def _iterate(self, basis: Tensor, n: int, tol: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(basis (k, *in), u (*in), v (*out))``: at most ``n`` subspace iterations on ``AᵀA`` from ``basis``
        (stopping once the Ritz values' sum grows by less than ``tol``), then the top Ritz pair, ``v = A u / ‖A u‖``."""
        dtype, w, previous = basis.dtype, self.weight.detach().float(), 0.0
        basis = basis.float()  # QR and SVD want float32, under bf16 autocast too (hence the caller's autocast off)
        for _ in range(n):
            image = self.operator(basis, w)  # (k, *out)
            # ‖A B‖_F² = the sum of the Ritz values of AᵀA on span(B): non-decreasing too, and cheaper than an SVD
            energy = float(image.square().sum())
            q = torch.linalg.qr(self.adjoint(image, w).flatten(1).T)[0]  # (in, k): AᵀA basis, orthonormalised
            basis = q.T.reshape(basis.shape)
            if energy - previous <= tol * energy:
                break
            previous = energy
        image = self.operator(basis, w).flatten(1)  # (k, out) = (A B)ᵀ
        left = torch.linalg.svd(image, full_matrices=False)[0][:, 0]  # (k,): top right singular vector of A B
        u = (left @ basis.flatten(1)).view(basis.shape[1:])  # (*in)
        u = u / u.norm().clamp_min(1e-12)
        v = self.operator(u[None], w)[0]  # (*out)
        return basis.to(dtype), u.to(dtype), (v / v.norm().clamp_min(1e-12)).to(dtype)

    def training_vectors(self) -> tuple[Tensor, Tensor]:
        """Unit ``(u (*in), v (*out))`` with ``vᵀ A u ≈ σ(A)`` for this training step (see the class)."""
        basis, u, v = self._iterate(self.basis, self.n_power_iterations, POWER_TOL)
        self.basis.copy_(basis)
        return u, v

    def exact_sigma(self) -> Tensor:
        """The operator norm ``σ(A)`` (a detached scalar) for evaluation."""
        raise NotImplementedError

    def sigma(self) -> Tensor:
        """The normaliser ``σ`` of the current mode (see the class docstring): a scalar."""
        if self.training and not self.frozen:
            with torch.autocast(self.u.device.type, enabled=False):
                u, v = self.training_vectors()
            self.u.copy_(u), self.v.copy_(v)
        if self.training or self.frozen:
            return (self.v * self.operator(self.u[None], self.weight)[0]).sum()
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device, self.weight.dtype)
        if self._sigma_cache is None or self._sigma_cache[0] != key:
            with torch.inference_mode(False), torch.no_grad(), torch.autocast(self.u.device.type, enabled=False):
                # a normal float tensor: later graphs may divide by it
                self._sigma_cache = (key, self.exact_sigma())
        return self._sigma_cache[1]

    def normalized_weight(self) -> Tensor:
        """``coeff · weight / σ``: the weight the layer applies."""
        return self.coeff * self.weight / self.sigma()


class SpectralNormLinear(_SpectralNorm):
    """``y = (c / σ(W)) W x + b``: a linear map of spectral norm ``c`` (Lipschitz constant ``c``), ``x: (B, in)``.

    ``σ(W)``: in training, exact when the smaller side of ``W`` has at most :data:`EXACT_MAX_FEATURES` features (its
    top singular vectors by ``eigh`` of the smaller Gram matrix), else subspace iteration on :data:`SUBSPACE`
    vectors; in evaluation ``torch.linalg.matrix_norm(W, ord=2)`` (the largest singular value; see
    :class:`_SpectralNorm`). Unlike the paper's ``min(1, c/σ̂)`` the norm is always ``c``, never less; a block's
    ``g`` can still be small (its layers' directions need not align). Post: 6482.

    Args:
        in_features, out_features: the sizes of ``x`` and ``y``.
        coeff: the norm ``c``.
        n_power_iterations: at most this many subspace iterations per training step (fewer once converged), for
            layers too large for the exact vectors.
    """

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.9, n_power_iterations: int = 20) -> None:
        super().__init__(coeff, n_power_iterations, (in_features,), (out_features,), SUBSPACE)
        layer = nn.Linear(in_features, out_features)  # for its initialisation
        self.weight, self.bias = layer.weight, layer.bias  # (out, in), (out,)
        u, v = self.training_vectors()
        self.u.copy_(u), self.v.copy_(v)

    def operator(self, x: Tensor, weight: Tensor) -> Tensor:
        return x @ weight.T  # (k, out)

    def adjoint(self, y: Tensor, weight: Tensor) -> Tensor:
        return y @ weight  # (k, in)

    @torch.no_grad()
    def training_vectors(self) -> tuple[Tensor, Tensor]:
        w = self.weight.detach()
        if min(w.shape) > EXACT_MAX_FEATURES:
            return super().training_vectors()
        w32 = w.float()
        if w.shape[0] >= w.shape[1]:
            u = torch.linalg.eigh(w32.T @ w32)[1][:, -1]  # (in,): top eigenvector of WᵀW (ascending order)
        else:
            u = w32.T @ torch.linalg.eigh(w32 @ w32.T)[1][:, -1]  # (in,): Wᵀ of the top eigenvector of WWᵀ
        u = (u / u.norm().clamp_min(1e-12)).to(w.dtype)
        v = w @ u  # (out,)
        return u, v / v.norm().clamp_min(1e-12)

    def exact_sigma(self) -> Tensor:
        return torch.linalg.matrix_norm(self.weight.detach().float(), ord=2).to(self.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)  # (B, out)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # Checkpoints written before issue 29 held torch's spectral_norm parametrisation: the same weight and vectors.
        old = {"linear.parametrizations.weight.original": "weight", "linear.bias": "bias",
               "linear.parametrizations.weight.0._v": "u", "linear.parametrizations.weight.0._u": "v"}
        for key, new in old.items():
            if prefix + key in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(state_dict, prefix, *args)


class SpectralNormConv2d(_SpectralNorm):
    """A stride-1 "same" convolution of operator norm ``c`` on inputs ``(B, in, H, W)`` of a fixed ``input_size``.

    The spectral norm of the *convolution as a linear map* (not of its reshaped kernel, which bounds nothing) by
    iteration through ``conv2d`` and its adjoint ``conv_transpose2d`` (Behrmann et al. 2019): in training as
    :class:`_SpectralNorm` says, on one vector (a subspace of images costs a convolution per vector); in evaluation
    on :data:`EVAL_SUBSPACE` vectors to convergence (growth below :data:`EVAL_TOL`, at most 2,000 iterations) once
    per weight version, since the exact norm of a zero-padded convolution needs its ``(out·H·W) × (in·H·W)``
    matrix. Post: 6482.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size: tuple[int, int],
                 coeff: float = 0.9, n_power_iterations: int = 20) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        super().__init__(coeff, n_power_iterations, (in_channels, *input_size), (out_channels, *input_size), 1)
        self.padding = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=self.padding)
        basis, u, v = self._iterate(self.basis, 100, POWER_TOL)
        self.basis.copy_(basis), self.u.copy_(u), self.v.copy_(v)

    @property
    def weight(self) -> Tensor:
        return self.conv.weight  # (out, in, k, k)

    def operator(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, padding=self.padding)  # (k, out, H, W)

    def adjoint(self, y: Tensor, weight: Tensor) -> Tensor:
        return F.conv_transpose2d(y, weight, padding=self.padding)  # (k, in, H, W)

    def exact_sigma(self) -> Tensor:
        # The training vector and EVAL_SUBSPACE - 1 fixed random ones: one vector converges too slowly on the flat
        # top of a normalised operator (measured: 5e-5 short after 2,000 iterations on a trained 4-channel layer).
        extra = torch.randn(EVAL_SUBSPACE - 1, self.u.numel(), generator=torch.Generator().manual_seed(0))
        start = torch.cat([self.u.flatten()[None], extra.to(self.u)])[: self.u.numel()]  # (k, in·H·W)
        basis = torch.linalg.qr(start.T)[0].T.reshape(-1, *self.u.shape)  # (k, in, H, W), orthonormal
        _, u, _ = self._iterate(basis, 2000, EVAL_TOL)
        return self.operator(u[None], self.weight.detach()).norm()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(), self.conv.bias, padding=self.padding)  # (B, out, H, W)


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
            frozen = [m for m in self.g.modules() if isinstance(m, _SpectralNorm)] if training else []
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
