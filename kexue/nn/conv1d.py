"""A residual 1-D convolutional classifier for spectra and other fixed-grid sequences.

Post: 基于Conv1D的光谱分类模型(一维序列分类) (https://kexue.fm/archives/5505): "ordinary 1-D
convolution plus residual connections", stacked with pooling between stages and a global pooling at
the end, applied to LAMOST spectra (one flux value per wavelength bin).

- :func:`normalize_spectra`: per-sequence normalisation (spectra differ in overall flux scale).
- :class:`ResidualBlock1d`: two or more ``Conv1d -> BatchNorm -> ReLU`` with an identity (or 1x1) shortcut.
- :class:`ResidualConv1dEncoder`: stem, stages of residual blocks with pooling between them, global
  pooling: ``(B, L)`` or ``(B, C_in, L)`` to features ``(B, D)`` (the component a LightningModule takes);
- :class:`ResidualConv1dClassifier`: that encoder plus a linear head, to logits ``(B, K)``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Normalization = Literal["zscore", "max", "none"]


def normalize_spectra(x: Tensor, mode: Normalization = "zscore", eps: float = 1e-8) -> Tensor:
    """Normalise each sequence on its own, along the last axis.

    Spectra of the same class can differ in overall flux by orders of magnitude (distance, exposure);
    the class lives in the shape, so each row is rescaled independently (kexue.fm/archives/5505).

    Args:
        x: ``(..., L)`` sequences.
        mode: ``"zscore"`` (subtract the row mean, divide by its standard deviation), ``"max"``
            (divide by the row's largest absolute value) or ``"none"``.
        eps: floor of the divisor, so a constant row maps to zeros instead of NaN.

    Returns:
        ``(..., L)`` normalised sequences.
    """
    if mode == "none":
        return x
    if mode == "zscore":
        centred = x - x.mean(-1, keepdim=True)  # (..., L)
        return centred / centred.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=eps)  # population std
    if mode == "max":
        return x / x.abs().amax(-1, keepdim=True).clamp(min=eps)
    raise ValueError(f"normalization must be 'zscore', 'max' or 'none', got {mode!r}")


class ResidualBlock1d(nn.Module):
    """``len(kernel_sizes)`` ``Conv1d -> BatchNorm -> ReLU`` layers (the last ReLU after the sum) plus a shortcut.

    The shortcut is the identity when the channel count is unchanged, else a 1x1 convolution with
    BatchNorm. Padding is "same", so the length is kept: ``(B, C_in, L) -> (B, C_out, L)``.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_sizes: widths of the stacked convolutions, e.g. ``(7, 5, 3)``.
        dropout: dropout before the last convolution (0 disables it).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (7, 5, 3), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be positive widths, got {list(kernel_sizes)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, k in enumerate(kernel_sizes):
            if i == len(kernel_sizes) - 1 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Conv1d(channels, out_channels, k, padding="same", bias=False), nn.BatchNorm1d(out_channels)]
            if i < len(kernel_sizes) - 1:
                layers.append(nn.ReLU(inplace=True))
            channels = out_channels
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))  # (B, C_out, L)


class ResidualConv1dEncoder(nn.Module):
    """Residual 1-D CNN (kexue.fm/archives/5505), the post's Conv1D + residual design, up to the pooled vector.

    ``stem`` conv -> ``len(channels)`` stages of ``blocks_per_stage`` :class:`ResidualBlock1d` each,
    a ``pool_size`` max/avg pooling between stages (shortening the length keeps long spectra cheap and
    widens the receptive field) -> global pooling over the remaining length: ``(B, L)`` or ``(B, C_in, L)``
    raw sequences to ``(B, D)`` features, ``D = output_dim``.

    Args:
        in_channels: input channels (1 for a spectrum).
        channels: output channels of each stage, e.g. ``(32, 64, 64)``.
        blocks_per_stage: residual blocks per stage.
        kernel_sizes: convolution widths inside each block.
        stem_kernel: width of the first convolution (0: no stem, the first block reads the input).
        stem_stride: stride of that convolution; > 1 shortens long inputs (ACSF1's 1,460 points) before
            the blocks, the cheap way to a large receptive field on CPU.
        pool: pooling between stages, ``"max"``, ``"avg"`` or ``"none"``.
        pool_size: kernel and stride of that pooling.
        global_pool: ``"avg"``, ``"max"`` or ``"avgmax"`` (both, concatenated) over the length.
        dropout: dropout inside the blocks.
        normalization: per-sequence :func:`normalize_spectra` mode applied in ``forward``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 128),
        blocks_per_stage: int = 1,
        kernel_sizes: Sequence[int] = (7, 5, 3),
        stem_kernel: int = 0,
        stem_stride: int = 1,
        pool: Literal["max", "avg", "none"] = "none",
        pool_size: int = 2,
        global_pool: Literal["avg", "max", "avgmax"] = "avg",
        dropout: float = 0.0,
        normalization: Normalization = "zscore",
    ) -> None:
        super().__init__()
        if not channels or min(channels) < 1 or blocks_per_stage < 1 or pool_size < 1:
            raise ValueError(
                f"need non-empty positive channels, blocks_per_stage >= 1 and pool_size >= 1, "
                f"got {list(channels)}, {blocks_per_stage}, {pool_size}"
            )
        if pool not in ("max", "avg", "none") or global_pool not in ("avg", "max", "avgmax"):
            raise ValueError(f"pool must be max|avg|none and global_pool avg|max|avgmax, got {pool!r}, {global_pool!r}")
        normalize_spectra(torch.zeros(1), normalization)  # validates the mode now, not at the first batch
        self.normalization, self.global_pool = normalization, global_pool
        layers: list[nn.Module] = []
        width = in_channels
        if stem_kernel > 0:
            pad = "same" if stem_stride == 1 else stem_kernel // 2  # PyTorch allows "same" only at stride 1
            layers += [
                nn.Conv1d(in_channels, channels[0], stem_kernel, stem_stride, pad, bias=False),
                nn.BatchNorm1d(channels[0]),
                nn.ReLU(inplace=True),
            ]
            width = channels[0]
        for s, out in enumerate(channels):
            if s > 0 and pool != "none":
                layers.append(nn.MaxPool1d(pool_size) if pool == "max" else nn.AvgPool1d(pool_size))
            for _ in range(blocks_per_stage):
                layers.append(ResidualBlock1d(width, out, kernel_sizes, dropout))
                width = out
        self.features = nn.Sequential(*layers)
        self.output_dim = width * (2 if global_pool == "avgmax" else 1)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, D)`` of ``x``: ``(B, L)`` or ``(B, C_in, L)`` raw sequences."""
        if x.dim() == 2:
            x = x.unsqueeze(1)  # (B, 1, L)
        h = self.features(normalize_spectra(x, self.normalization))  # (B, C, L')
        if self.global_pool == "avg":
            return h.mean(-1)  # (B, C)
        if self.global_pool == "max":
            return h.amax(-1)  # (B, C)
        return torch.cat([h.mean(-1), h.amax(-1)], dim=-1)  # (B, 2C)


class ResidualConv1dClassifier(nn.Module):
    """:class:`ResidualConv1dEncoder` -> dropout -> linear: ``(B, L)`` or ``(B, C_in, L)`` to logits ``(B, K)``
    (kexue.fm/archives/5505). ``num_classes`` is ``K`` (at least 2); the other arguments are the encoder's
    (``dropout`` also before the head)."""

    def __init__(self, num_classes: int, dropout: float = 0.0, **encoder_args) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"need num_classes >= 2, got {num_classes}")
        self.encoder = ResidualConv1dEncoder(dropout=dropout, **encoder_args)
        self.output_dim = self.encoder.output_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.output_dim, num_classes)

    @property
    def features(self) -> nn.Sequential:
        """The encoder's convolutional stages, ``(B, C_in, L) -> (B, C, L')``."""
        return self.encoder.features

    def embed(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, D)`` of ``x``: ``(B, L)`` or ``(B, C_in, L)`` raw sequences."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K)`` for ``x``: ``(B, L)`` or ``(B, C_in, L)``."""
        return self.head(self.dropout(self.encoder(x)))  # (B, K)
