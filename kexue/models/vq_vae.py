"""VQ-VAE's networks, each a component of the task: a convolutional image encoder and decoder (the ``autoencoder``; the
quantiser between them is :class:`~kexue.nn.quantize.VectorQuantizer`, or none: the plain autoencoder with the same
bottleneck), and the autoregressive ``prior`` over the code grid, a causal :class:`~kexue.models.CausalLM` on the
flattened grid after a start token.

Post: VQ-VAE的简明介绍：量子化自编码器 (https://kexue.fm/archives/6760): encode to a grid of discrete codes, decode
from it, then fit an autoregressive model (PixelCNN in the paper; here the project's Transformer) to the codes of
the training images and sample new grids from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.models.causal_lm import CausalLM
from kexue.models.sizes import check_positions, check_vocabulary
from kexue.nn.quantize import VQOutput
from kexue.nn.transformer import TransformerConfig


def grid_stages(height: int, width: int, max_stages: int = 3) -> int:
    """How many stride-2 stages take an ``height x width`` image to its code grid: halve while both sides are even
    and their halves at least 4 (28 x 28 -> 7 x 7: 2 stages; 8 x 8 -> 4 x 4: 1 stage)."""
    stages = 0
    while stages < max_stages and height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= 4:
        height, width, stages = height // 2, width // 2, stages + 1
    return stages


class ResidualBlock2d(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` on ``(B, C, H, W)``, the VQ-VAE paper's residual block."""

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # (B, C, H, W)


class ImageEncoder(nn.Module):
    """Images ``(B, C_in, H, W)`` -> code vectors ``(B, code_dim, H / 2^stages, W / 2^stages)``: ``stages``
    stride-2 4x4 convolutions, two residual blocks, a 1x1 projection."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, code_dim: int = 16, stages: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1)]
        for _ in range(stages):
            layers += [nn.ReLU(), nn.Conv2d(hidden, hidden, 4, stride=2, padding=1)]
        layers += [ResidualBlock2d(hidden), ResidualBlock2d(hidden), nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, code_dim, H', W')


class ImageDecoder(nn.Module):
    """Code vectors ``(B, code_dim, H', W')`` -> pixel logits ``(B, C_out, H' 2^stages, W' 2^stages)``: the mirror
    of :class:`ImageEncoder` (transposed 4x4 stride-2 convolutions)."""

    def __init__(self, out_channels: int = 1, hidden: int = 64, code_dim: int = 16, stages: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1), ResidualBlock2d(hidden),
                                   ResidualBlock2d(hidden)]
        for _ in range(stages):
            layers += [nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)  # (B, C_out, H, W)


class ConvAutoencoder(nn.Module):
    """:class:`ImageEncoder` and :class:`ImageDecoder` around a continuous ``code_dim x H' x W'`` bottleneck: the VQ-VAE
    task's ``autoencoder`` component (the quantiser is a component of its own, placed between :meth:`encode` and
    :meth:`decode`; without one this is the plain autoencoder with the same bottleneck). Pixels are in [0, 1]; the
    decoder's output is linear (with a sigmoid, a trial on MNIST-5k stalled at the all-background image), clamped to
    [0, 1] where images are shown or scored. Post: https://kexue.fm/archives/6760.

    Args:
        data_shape: ``[C, H, W]`` of the images (the task links it from ``data.data_shape``).
        hidden: channels of the convolutions.
        code_dim: ``D``, the channels of the bottleneck (the task links it into the quantiser's ``code_dim``).
        stages: stride-2 stages (``None``: :func:`grid_stages`); the code grid is ``H / 2^stages x W / 2^stages``.
    """

    def __init__(self, data_shape: list[int] | None = None, hidden: int = 64, code_dim: int = 16,
                 stages: int | None = None) -> None:
        super().__init__()
        if data_shape is None or len(data_shape) != 3:
            raise ValueError(f"data_shape must be [C, H, W] images (the task links it from data.data_shape; VQ-VAE "
                             f"takes no 2-D points), got {data_shape}")
        if hidden < 1 or code_dim < 1 or (stages is not None and stages < 0):
            raise ValueError(f"hidden and code_dim must be >= 1 and stages >= 0, got {hidden}, {code_dim}, {stages}")
        C, H, W = data_shape
        self.stages = grid_stages(H, W) if stages is None else stages
        if H % 2 ** self.stages or W % 2 ** self.stages:
            raise ValueError(f"stages: {self.stages} stride-2 stages need sides divisible by {2 ** self.stages}, "
                             f"got {H}x{W}")
        self.code_dim, self.grid = code_dim, (H // 2 ** self.stages, W // 2 ** self.stages)
        self.encoder = ImageEncoder(C, hidden, code_dim, self.stages)
        self.decoder = ImageDecoder(C, hidden, code_dim, self.stages)

    def encode(self, x: Tensor) -> Tensor:
        """Code vectors ``(B, D, H', W')`` of images ``x`` ``(B, C, H, W)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructions ``(B, C, H, W)`` (unclamped) of code vectors ``z`` ``(B, D, H', W')``."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstructions ``(B, C, H, W)`` (unclamped) of ``x`` through the continuous bottleneck."""
        return self.decode(self.encode(x))


# The VQ-VAE task's prior: 2 layers of width 64, learned positions for grids of up to 16 x 16 codes.
PRIOR_CONFIG = TransformerConfig(dim=64, num_layers=2, num_heads=4, dropout=0.1, positions="learned", max_length=256)


class CodePrior(nn.Module):
    """Autoregressive prior over flattened code grids, the VQ-VAE task's ``prior`` component: ``codes (B, T)`` ->
    next-code logits ``(B, T, K)``; the input is shifted right behind a start token ``K`` (a
    :class:`~kexue.models.CausalLM` of ``K + 1`` tokens, the start never predicted). Post:
    https://kexue.fm/archives/6760 (PixelCNN in the paper; here the project's Transformer).

    Args:
        num_codes: ``K`` (the task links it from the quantiser's ``num_codes``).
        config: the causal Transformer's :class:`TransformerConfig` (``max_length`` must cover ``T`` for learned
            positions: :attr:`positions`).
    """

    def __init__(self, num_codes: int | None = None,
                 config: TransformerConfig = PRIOR_CONFIG) -> None:  # noqa: B008 (a frozen default jsonargparse shows)
        super().__init__()
        if not num_codes or num_codes < 2:
            raise ValueError(f"num_codes must be >= 2 (the task links it from model.quantizer.num_codes), "
                             f"got {num_codes}")
        self.num_codes = num_codes
        self.lm = CausalLM(num_codes + 1, config, tie_embeddings=False)

    @property
    def positions(self) -> int | None:
        """How many codes the prior can read: ``max_length`` with learned positions, else unbounded (``None``)."""
        config = self.lm.config
        return config.max_length if config.positions == "learned" else None

    def forward(self, codes: Tensor) -> Tensor:
        """Logits ``(B, T, K)`` of code ``t`` given codes ``< t``, for ``codes`` ``(B, T)``."""
        start = torch.full_like(codes[:, :1], self.num_codes)  # (B, 1)
        return self.lm(torch.cat([start, codes[:, :-1]], 1))[..., : self.num_codes]  # (B, T, K)

    @torch.no_grad()
    def sample(self, n: int, length: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` code sequences ``(n, length)`` sampled one code at a time on a KV cache (call in ``eval()``)."""
        device = self.lm.embed.weight.device
        ids = torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)  # (n, 1): the start token
        cache, out = self.lm.new_cache(), []
        for _ in range(length):
            logits = self.lm(ids, cache=cache)[:, -1, : self.num_codes].float() / temperature  # (n, K)
            ids = torch.multinomial(logits.softmax(-1), 1, generator=generator)  # (n, 1)
            out.append(ids)
        return torch.cat(out, 1)  # (n, length)


class VQVAENetwork(nn.Module):
    """The three VQ-VAE components composed (6760): images -> code vectors (``autoencoder.encode``) -> nearest codes
    (``quantizer``) -> images (``autoencoder.decode``), and the ``prior`` over the flattened code grid. The
    LightningModule receives the components and trains this; it never builds a network itself.

    Args:
        autoencoder: ``encode``: ``(B, C, H, W) -> (B, D, H', W')``, ``decode`` back, ``grid = (H', W')``
            (:class:`ConvAutoencoder`).
        quantizer: ``forward(z) -> VQOutput``, ``quantize(z) -> codes (B, H', W')``, ``lookup(codes)``,
            ``num_codes`` (:class:`~kexue.nn.quantize.VectorQuantizer`); ``None``: the plain autoencoder (no codes).
        prior: ``forward(codes (B, T)) -> logits (B, T, K)``, ``sample``, ``num_codes``, ``positions``
            (:class:`CodePrior`); dropped without a quantiser. Its vocabulary and positions are checked against the
            quantiser's codes and the grid (:mod:`kexue.models.sizes`, one ``UsageError`` line).
    """

    def __init__(self, autoencoder: nn.Module, quantizer: nn.Module | None = None,
                 prior: nn.Module | None = None) -> None:
        super().__init__()
        self.autoencoder, self.quantizer = autoencoder, quantizer
        self.prior = prior if quantizer is not None else None
        self.grid: tuple[int, int] = tuple(autoencoder.grid)
        self.length = self.grid[0] * self.grid[1]
        if self.prior is not None:  # under the CLI the links make both hold; networks built in Python may not
            check_vocabulary(self.prior.num_codes, quantizer.num_codes, "model.prior")
            check_positions(self.length, self.prior.positions, "model.prior.config.max_length",
                            option=f"the code grid ({self.grid[0]}x{self.grid[1]} codes; model.autoencoder.stages)")

    def forward(self, x: Tensor) -> tuple[Tensor, VQOutput | None]:
        """Reconstructions ``(B, C, H, W)`` (unclamped) of ``x`` ``(B, C, H, W)``, and the quantiser's output."""
        z = self.autoencoder.encode(x)  # (B, D, H', W')
        vq = self.quantizer(z) if self.quantizer is not None else None
        return self.autoencoder.decode(z if vq is None else vq.quantized), vq

    @torch.no_grad()
    def encode_codes(self, x: Tensor) -> Tensor:
        """Code grid ``(B, H', W')`` of images ``x`` ``(B, C, H, W)`` (no codebook update)."""
        return self.quantizer.quantize(self.autoencoder.encode(x))

    @torch.no_grad()
    def decode_codes(self, codes: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] decoded from a code grid ``codes`` ``(B, H', W')``."""
        return self.autoencoder.decode(self.quantizer.lookup(codes).float()).clamp(0, 1)

    def prior_nll(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood (nats per code) of the prior on the codes of images ``x``."""
        codes = self.encode_codes(x).flatten(1)  # (B, T)
        return F.cross_entropy(self.prior(codes).flatten(0, 1).float(), codes.flatten())

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images ``(n, C, H, W)`` in [0, 1]: code grids sampled from the prior, decoded (call in eval)."""
        codes = self.prior.sample(n, self.length, temperature, generator)  # (n, T)
        return self.decode_codes(codes.view(n, *self.grid))  # (n, H', W') -> (n, C, H, W)


__all__ = ["PRIOR_CONFIG", "CodePrior", "ConvAutoencoder", "ImageDecoder", "ImageEncoder", "ResidualBlock2d",
           "VQVAENetwork", "grid_stages"]
