"""VQ-VAE's networks: a convolutional image encoder and decoder around a :class:`~kexue.nn.quantize.VectorQuantizer`
(or none: the plain autoencoder with the same bottleneck), and the autoregressive prior over the code grid, a causal
:class:`~kexue.models.CausalLM` on the flattened grid after a start token.

Post: VQ-VAE的简明介绍：量子化自编码器 (https://kexue.fm/archives/6760): encode to a grid of discrete codes, decode
from it, then fit an autoregressive model (PixelCNN in the paper; here the project's Transformer) to the codes of
the training images and sample new grids from it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kexue.models.causal_lm import CausalLM
from kexue.nn.quantize import VectorQuantizer, VQOutput
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


class VQAutoencoder(nn.Module):
    """Encoder -> quantiser -> decoder; ``quantizer=None`` is the plain autoencoder with the same continuous
    ``code_dim x H' x W'`` bottleneck. Pixels are in [0, 1]; the decoder's output is linear (with a sigmoid, a trial on
    MNIST-5k stalled at the all-background image), clamped to [0, 1] where images are shown or scored.

    Args:
        data_shape: ``[C, H, W]`` of the images.
        hidden: channels of the convolutions.
        code_dim: ``D``, the channels of the bottleneck.
        stages: stride-2 stages (``None``: :func:`grid_stages`).
        quantizer: the bottleneck, or ``None``.
    """

    def __init__(self, data_shape: list[int], hidden: int = 64, code_dim: int = 16, stages: int | None = None,
                 quantizer: VectorQuantizer | None = None) -> None:
        super().__init__()
        C, H, W = data_shape
        self.stages = grid_stages(H, W) if stages is None else stages
        if H % 2 ** self.stages or W % 2 ** self.stages:
            raise ValueError(f"{self.stages} stride-2 stages need sides divisible by {2 ** self.stages}, got {H}x{W}")
        self.grid = (H // 2 ** self.stages, W // 2 ** self.stages)
        self.encoder = ImageEncoder(C, hidden, code_dim, self.stages)
        self.quantizer = quantizer
        self.decoder = ImageDecoder(C, hidden, code_dim, self.stages)

    def forward(self, x: Tensor) -> tuple[Tensor, VQOutput | None]:
        """Reconstructions ``(B, C, H, W)`` (unclamped) of ``x`` ``(B, C, H, W)``, and the quantiser's output."""
        z = self.encoder(x)  # (B, D, H', W')
        vq = self.quantizer(z) if self.quantizer is not None else None
        return self.decoder(z if vq is None else vq.quantized), vq

    @torch.no_grad()
    def encode_codes(self, x: Tensor) -> Tensor:
        """Code grid ``(B, H', W')`` of images ``x`` ``(B, C, H, W)`` (no codebook update)."""
        return self.quantizer.quantize(self.encoder(x))

    @torch.no_grad()
    def decode_codes(self, codes: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] decoded from a code grid ``codes`` ``(B, H', W')``."""
        return self.decoder(self.quantizer.lookup(codes).float()).clamp(0, 1)


class CodePrior(nn.Module):
    """Autoregressive prior over flattened code grids: ``codes (B, T)`` -> next-code logits ``(B, T, K)``; the
    input is shifted right behind a start token ``K`` (the vocabulary is ``K + 1``, the start never predicted).

    Args:
        num_codes: ``K``.
        config: the causal Transformer's :class:`TransformerConfig` (``max_length`` must cover ``T``).
    """

    def __init__(self, num_codes: int, config: TransformerConfig | dict = TransformerConfig()) -> None:  # noqa: B008
        super().__init__()
        self.num_codes = num_codes
        self.lm = CausalLM(num_codes + 1, config, tie_embeddings=False)

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


__all__ = ["CodePrior", "ImageDecoder", "ImageEncoder", "ResidualBlock2d", "VQAutoencoder", "grid_stages"]
