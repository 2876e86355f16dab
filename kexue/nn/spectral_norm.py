"""Spectrally normalised linear and convolution layers, ``coeff · A / σ(A)``: the contractive branches of the
invertible ResNet (:mod:`kexue.nn.flows`), whose bound ``Lip(g) <= coeff`` must hold after training, not only at
initialisation — hence exact norms where they are cheap and a converged subspace iteration elsewhere.

Posts: 细水长flow之可逆ResNet:极致的暴力美学 (https://kexue.fm/archives/6482); 深度学习中的Lipschitz约束:泛化与生成模型
(https://kexue.fm/archives/6051).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Subspace iteration stops once the sum of its Ritz values grows by less than this fraction per iteration: each Ritz
# value of a subspace iteration on AᵀA only grows, so the top one (the estimate of σ²) grew by less than that sum did.
# Evaluation's convolution norm iterates to EVAL_TOL.
POWER_TOL, EVAL_TOL = 1e-5, 1e-7
# A linear layer whose smaller side has at most this many features gets its exact top singular vectors in every
# training step (eigh of the smaller Gram matrix: ≈ 4 ms at 256 on one CPU thread, the cost of 50 power iterations);
# a larger one iterates a subspace of SUBSPACE vectors (the top of a spectrally normalised weight is nearly flat, so
# one vector tracks it badly: measured on 512 units at lr 1e-3, 1.04 × the norm with one, 1.00001 × with 8).
EXACT_MAX_FEATURES, SUBSPACE, EVAL_SUBSPACE = 256, 8, 8


class SpectralNorm(nn.Module):
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


class SpectralNormLinear(SpectralNorm):
    """``y = (c / σ(W)) W x + b``: a linear map of spectral norm ``c`` (Lipschitz constant ``c``), ``x: (B, in)``.

    ``σ(W)``: in training, exact when the smaller side of ``W`` has at most :data:`EXACT_MAX_FEATURES` features (its
    top singular vectors by ``eigh`` of the smaller Gram matrix), else subspace iteration on :data:`SUBSPACE`
    vectors; in evaluation ``torch.linalg.matrix_norm(W, ord=2)`` (the largest singular value; see
    :class:`SpectralNorm`). Unlike the paper's ``min(1, c/σ̂)`` the norm is always ``c``, never less; a block's
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


class SpectralNormConv2d(SpectralNorm):
    """A stride-1 "same" convolution of operator norm ``c`` on inputs ``(B, in, H, W)`` of a fixed ``input_size``.

    The spectral norm of the *convolution as a linear map* (not of its reshaped kernel, which bounds nothing) by
    iteration through ``conv2d`` and its adjoint ``conv_transpose2d`` (Behrmann et al. 2019): in training as
    :class:`SpectralNorm` says, on one vector (a subspace of images costs a convolution per vector); in evaluation
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


__all__ = ["SpectralNorm", "SpectralNormConv2d", "SpectralNormLinear"]
