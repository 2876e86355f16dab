"""DCGAN-size networks and losses for GANs as variational inference, with a VAE baseline on the same decoder.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716; arXiv 1807.05936). Read as
variational inference, the generator's loss is the usual ``-log D(G(z))`` plus ``KL(q(x) || q_old(x))``: the new
generator's distribution should stay close to the previous one. With a Gaussian ``q(x|z)`` around ``G(z)`` that KL is
bounded by ``λ · E_z ||G(z) - G_old(z)||²`` — :func:`generator_regularizer`, the term standard GANs leave out. The
author's experiment (bojone/gan, vgan/) computes ``G_old(z)`` just before each iteration's generator update, takes two
generator steps against those same old samples, and weighs the pixel-mean squared error by 5 (images in [-1, 1]).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_shape(data_shape: list[int]) -> tuple[int, int, int]:
    if len(data_shape) != 3 or data_shape[1] % 4 or data_shape[2] % 4 or min(data_shape) < 1:
        raise ValueError(f"the GAN networks need images (C, H, W) with H and W multiples of 4, got data_shape "
                         f"{list(data_shape)}")
    return data_shape[0], data_shape[1], data_shape[2]


class DCGANGenerator(nn.Module):
    """``z (B, latent_dim)`` -> images ``(B, C, H, W)``: a linear layer to ``(2w, H/4, W/4)``, then two stride-2
    transposed convolutions (BatchNorm + ReLU between), as DCGAN; ``output`` ``"tanh"`` gives values in [-1, 1]
    (the GAN), ``"logits"`` unbounded values (the VAE decoder's Bernoulli logits)."""

    def __init__(self, latent_dim: int = 64, data_shape: list[int] = (1, 28, 28), width: int = 32,
                 output: Literal["tanh", "logits"] = "tanh") -> None:
        super().__init__()
        C, H, W = _check_shape(list(data_shape))
        self.latent_dim, self.output, self.base = latent_dim, output, (2 * width, H // 4, W // 4)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * (H // 4) * (W // 4)),
                                     nn.BatchNorm1d(2 * width * (H // 4) * (W // 4)), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, C, 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` of codes ``z (B, latent_dim)``."""
        h = self.project(z).view(len(z), *self.base)  # (B, 2w, H/4, W/4)
        x = self.up(h)  # (B, C, H, W)
        return torch.tanh(x) if self.output == "tanh" else x


class DCGANDiscriminator(nn.Module):
    """Images ``(B, C, H, W)`` in [-1, 1] -> one logit ``(B,)`` (real vs generated): two stride-2 convolutions with
    LeakyReLU(0.2), then a linear layer. No BatchNorm, so a batch of real and a batch of fake images are scored
    independently."""

    def __init__(self, data_shape: list[int] = (1, 28, 28), width: int = 32) -> None:
        super().__init__()
        C, H, W = _check_shape(list(data_shape))
        self.convs = nn.Sequential(
            nn.Conv2d(C, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * width * (H // 4) * (W // 4), 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B,)`` of images ``x (B, C, H, W)``."""
        return self.head(self.convs(x).flatten(1)).squeeze(-1)  # (B,)


class ConvEncoder(nn.Module):
    """The VAE's encoder: images ``(B, C, H, W)`` in [0, 1] -> ``(mean, log_var)`` each ``(B, latent_dim)`` of the
    Gaussian posterior ``q(z|x)``; the discriminator's two convolutions with a ``2 · latent_dim`` head."""

    def __init__(self, latent_dim: int = 64, data_shape: list[int] = (1, 28, 28), width: int = 32) -> None:
        super().__init__()
        C, H, W = _check_shape(list(data_shape))
        self.convs = nn.Sequential(
            nn.Conv2d(C, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * width * (H // 4) * (W // 4), 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_var)`` each ``(B, latent_dim)`` of images ``x (B, C, H, W)``."""
        mean, log_var = self.head(self.convs(x).flatten(1)).chunk(2, dim=-1)  # (B, d), (B, d)
        return mean, log_var


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-E log D(x) - E log(1 - D(G(z)))`` from logits ``(B,)`` each (binary cross-entropy, mean of both halves
    halved as in the post's code)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


def generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss ``E_z[-log D(G(z))] = E softplus(-logit)`` of logits ``(B,)``: the first
    term of the post's generator objective."""
    return F.softplus(-fake_logits).mean()


def generator_regularizer(fake: Tensor, old_fake: Tensor) -> Tensor:
    """``E_z ||G(z) - G_old(z)||²`` as the mean over the batch and the pixels of the squared difference of the
    generator's samples ``fake (B, ...)`` and the previous generator's samples ``old_fake`` on the same ``z``
    (no gradient through ``old_fake``): the post's KL(q(x) || q_old(x)) term, to be weighted by λ."""
    return (fake - old_fake.detach()).square().mean()


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` summed over the latent dimension: ``(B, d)`` -> ``(B,)``."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(-1)


def vae_negative_elbo(encoder: nn.Module, decoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(reconstruction, kl)``, batch means of the VAE's negative ELBO terms for images ``x (B, C, H, W)`` in [0, 1]:
    Bernoulli ``BCE(x, decoder(z))`` summed over pixels with one reparameterised ``z ~ q(z|x)`` from ``encoder``'s
    ``(mean, log_var)``, and :func:`gaussian_kl` to ``N(0, I)`` (float32 under autocast)."""
    mean, log_var = encoder(x)  # (B, d) each
    z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)  # (B, d)
    logits = decoder(z).float()  # (B, C, H, W)
    rec = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none").flatten(1).sum(-1)  # (B,)
    return rec.mean(), gaussian_kl(mean.float(), log_var.float()).mean()


def check_arguments(data_shape: list[int] | None, **values: float) -> None:
    """ValueError naming ``model.<option>`` for the first bad value of the GAN / VAE tasks' arguments (kept here
    so the LightningModules stay short): ``data_shape`` grey images with sides multiple of 4, ``latent_dim``,
    ``width``, ``generator_steps``, ``old_every``, ``num_samples`` >= 1 (2), ``reg_weight`` >= 0, ``lr`` > 0,
    ``beta1`` in [0, 1), ``d_lr_multiplier`` > 0, ``judge`` one of auto / mnist5k / digits / none."""
    if data_shape is None:
        raise ValueError("model.data_shape is required (the CLI links it from data.data_shape)")
    if len(data_shape) != 3 or data_shape[0] != 1 or data_shape[1] % 4 or data_shape[2] % 4:
        raise ValueError(f"model.data_shape must be grey images [1, H, W] with H, W multiples of 4 (MNIST-5k, "
                         f"digits), got {list(data_shape)}")
    rules = {"latent_dim": (lambda v: v >= 1, ">= 1"), "width": (lambda v: v >= 1, ">= 1"),
             "generator_steps": (lambda v: v >= 1, ">= 1"), "old_every": (lambda v: v >= 1, ">= 1"),
             "num_samples": (lambda v: v >= 2, ">= 2"), "reg_weight": (lambda v: v >= 0, ">= 0 (0 = plain GAN)"),
             "lr": (lambda v: v > 0, "> 0"), "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
             "d_lr_multiplier": (lambda v: v > 0, "> 0"),
             "judge": (lambda v: v in ("auto", "mnist5k", "digits", "none"), "auto, mnist5k, digits or none")}
    for name, value in values.items():
        test, text = rules[name]
        if not test(value):
            raise ValueError(f"model.{name} must be {text}, got {value!r}")


__all__ = ["ConvEncoder", "DCGANDiscriminator", "DCGANGenerator", "check_arguments", "discriminator_loss",
           "gaussian_kl", "generator_loss", "generator_regularizer", "vae_negative_elbo"]
