"""DCGAN-size networks for GANs as variational inference and for their VAE baseline: the tasks' components.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716; arXiv 1807.05936). Task ``gan``
takes a :class:`DCGANGenerator` (``output="tanh"``) and a :class:`DCGANDiscriminator`, task ``gan_vae`` a
:class:`ConvEncoder` and the same generator as its decoder (``output="logits"``); each is a component
(``--model.generator.width 64``), its ``data_shape`` linked from ``data.data_shape``. Their losses are
:mod:`kexue.losses.gan`'s.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from kexue.errors import UsageError


def _check_sizes(network: str, data_shape: list[int], **sizes: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``data_shape``; :class:`UsageError` naming ``network`` unless it is ``[C, H, W]`` with ``H``
    and ``W`` multiples of 4 (two stride-2 layers halve them twice) and every size in ``sizes`` is >= 1."""
    if len(data_shape) != 3 or data_shape[1] % 4 or data_shape[2] % 4 or min(data_shape) < 1:
        raise UsageError(f"{network}: data_shape must be images [C, H, W] with H and W multiples of 4 (linked from "
                         f"data.data_shape: MNIST-5k, digits or 28 x 28 / 8 x 8 CSV images), got {list(data_shape)}")
    for name, value in sizes.items():
        if value < 1:
            raise UsageError(f"{network}: {name} must be >= 1, got {value}")
    return data_shape[0], data_shape[1], data_shape[2]


class DCGANGenerator(nn.Module):
    """``z (B, latent_dim)`` -> images ``(B, C, H, W)``: a linear layer to ``(2w, H/4, W/4)``, then two stride-2
    transposed convolutions (BatchNorm + ReLU between), as DCGAN; ``output`` ``"tanh"`` gives values in [-1, 1]
    (the GAN), ``"logits"`` unbounded values (the VAE decoder's Bernoulli logits)."""

    def __init__(self, latent_dim: int = 64, data_shape: list[int] = (1, 28, 28), width: int = 32,
                 output: Literal["tanh", "logits"] = "tanh") -> None:
        super().__init__()
        C, H, W = _check_sizes("DCGANGenerator", list(data_shape), latent_dim=latent_dim, width=width)
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
        C, H, W = _check_sizes("DCGANDiscriminator", list(data_shape), width=width)
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
        C, H, W = _check_sizes("ConvEncoder", list(data_shape), latent_dim=latent_dim, width=width)
        self.latent_dim = latent_dim
        self.convs = nn.Sequential(
            nn.Conv2d(C, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * width * (H // 4) * (W // 4), 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_var)`` each ``(B, latent_dim)`` of images ``x (B, C, H, W)``."""
        mean, log_var = self.head(self.convs(x).flatten(1)).chunk(2, dim=-1)  # (B, d), (B, d)
        return mean, log_var


__all__ = ["ConvEncoder", "DCGANDiscriminator", "DCGANGenerator"]
