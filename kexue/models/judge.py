"""A judge of generated digits: a small CNN classifier trained here, no download, cached by its settings.

Inception score and FID need a classifier that knows the data; ImageNet's Inception network is neither offline nor
about digits. :func:`judge_classifier` trains a two-conv CNN on the fixed train split of the embedded MNIST-5k
(28 × 28) or scikit-learn digits (8 × 8) set (:func:`kexue.data.images.split_rows`, the split
:class:`kexue.datamodules.images.ImageDataModule` uses: no judge sees a validation or test image) with a fixed seed,
and caches its weights under ``$KEXUE_CACHE/judges/`` (default ``~/.cache/kexue/judges/``) in a
file named by a hash of its settings, so every run and benchmark scores samples with the same judge. Its class
probabilities feed :class:`kexue.metrics.InceptionScore`, its penultimate features
:class:`kexue.metrics.FrechetDistance` (post: 用变分推断统一理解生成模型, kexue.fm/archives/5716; the GAN and VQ-VAE
benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.assets import cache_root
from kexue.data.images import IMAGE_SETS, embedded_images, split_rows

JUDGE_SETS = {name: IMAGE_SETS[name][0] for name in ("mnist5k", "digits")}  # name -> side (square images)
JUDGE_VERSION = 1  # bump when the network or the training loop changes: old cache files are then ignored
# Per-set defaults over JudgeConfig's: 1,437 8 × 8 digits need more epochs, and a 2-pixel shift is a quarter of one
# (test accuracy 0.845 with the MNIST settings, 0.994 with these).
DATASET_DEFAULTS: dict[str, dict[str, object]] = {"mnist5k": {}, "digits": {"epochs": 30, "shift": 0}}


@dataclass(frozen=True)
class JudgeConfig:
    """Everything that decides a judge's weights; its hash names the cache file.

    Args:
        dataset: ``mnist5k`` or ``digits``; the judge trains on its train split ``split`` / ``split_seed``.
        channels: the two convolutions' widths; features: the penultimate (FID) feature size.
        epochs, batch_size, lr: Adam training; shift: random translation in pixels (augmentation, so that slightly
            off-centre generated digits are still recognised); seed: weights and batch order.
    """

    dataset: str = "mnist5k"
    channels: tuple[int, int] = (32, 64)
    features: int = 128
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    shift: int = 2
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0

    def key(self) -> str:
        """A 12-hex-digit hash of the settings and :data:`JUDGE_VERSION`."""
        text = json.dumps({**asdict(self), "version": JUDGE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class DigitJudge(nn.Module):
    """conv3-ReLU-pool2 twice, a ReLU linear layer of ``features`` units (the FID features), a 10-way head.

    ``forward(x)`` -> logits ``(B, 10)`` of images ``x (B, 1, S, S)`` in [0, 1] (``S`` the set's side; other sizes
    are resized bilinearly); :meth:`features_and_logits` returns ``(features (B, F), logits (B, 10))``.
    ``test_accuracy`` holds its accuracy on the set's test split (filled by :func:`judge_classifier`).
    """

    def __init__(self, side: int = 28, channels: tuple[int, int] = (32, 64), features: int = 128) -> None:
        super().__init__()
        self.side = side
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.hidden = nn.Linear(channels[1] * (side // 4) ** 2, features)
        self.head = nn.Linear(features, 10)
        self.test_accuracy = float("nan")

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, F), logits (B, 10))`` of ``x (B, 1, H, W)`` (or ``(B, H, W)``) in [0, 1]."""
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (B, 1, H, W)
        if x.shape[-2:] != (self.side, self.side):
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        h = self.convs(x).flatten(1)  # (B, C * (S/4)^2)
        features = F.relu(self.hidden(h))  # (B, F)
        return features, self.head(features)  # (B, F), (B, 10)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, 10)``."""
        return self.features_and_logits(x)[1]


def judge_splits(dataset: str = "mnist5k", split: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 split_seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """``{"train" | "val" | "test": (x (N, 1, S, S) in [0, 1], y (N,))}``: the embedded set and its split are
    ImageDataModule's own (:func:`kexue.data.images.embedded_images`, :func:`~kexue.data.images.split_rows`)."""
    if dataset not in JUDGE_SETS:
        raise ValueError(f"judge dataset must be one of {list(JUDGE_SETS)}, got {dataset!r}")
    parts = split_rows(*embedded_images(dataset), split, split_seed)
    return {name: (torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long)) for name, (x, y) in parts.items()}


def _shifted(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Each image of ``x (B, 1, S, S)`` translated by a random integer offset in ``[-shift, shift]``², zero-filled."""
    if shift <= 0:
        return x
    B, _, S, _ = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))  # (B, 1, S + 2s, S + 2s)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B), generator=generator)
    rows = (dy[:, None] + torch.arange(S))[:, :, None]  # (B, S, 1)
    cols = (dx[:, None] + torch.arange(S))[:, None, :]  # (B, 1, S)
    return padded[:, 0][torch.arange(B)[:, None, None], rows, cols].unsqueeze(1)  # (B, 1, S, S)


@torch.no_grad()
def judge_accuracy(judge: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Accuracy of ``judge`` on images ``x (N, 1, H, W)`` with labels ``y (N,)``."""
    correct = sum(int((judge(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / max(1, len(x))


def train_judge(config: JudgeConfig) -> DigitJudge:
    """Train a :class:`DigitJudge` from scratch on ``config``'s train split (deterministic for a given config and
    torch build; the global RNG is left as it was). ``test_accuracy`` is set on return."""
    splits = judge_splits(config.dataset, tuple(config.split), config.split_seed)
    x, y = splits["train"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        judge = DigitJudge(JUDGE_SETS[config.dataset], tuple(config.channels), config.features)
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.Adam(judge.parameters(), lr=config.lr)
        steps = config.epochs * -(-len(x) // config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=max(1, steps))
        judge.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), config.batch_size):
                idx = order[i:i + config.batch_size]
                loss = F.cross_entropy(judge(_shifted(x[idx], config.shift, generator)), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    judge.eval()
    judge.test_accuracy = judge_accuracy(judge, *splits["test"])
    return judge


def judge_cache_dir() -> Path:
    """``$KEXUE_CACHE/judges`` (default ``~/.cache/kexue/judges``)."""
    return cache_root() / "judges"


def judge_classifier(dataset: str = "mnist5k", **settings: object) -> DigitJudge:
    """The judge of ``dataset`` (``mnist5k`` or ``digits``) in eval mode with frozen weights: loaded from its cache
    file ``<judge_cache_dir()>/<dataset>-<hash>.pt`` or trained (:func:`train_judge`, about a minute on 2 CPU
    cores for MNIST-5k) and cached atomically. ``settings`` override :class:`JudgeConfig` fields (tests use tiny
    ones; ``DATASET_DEFAULTS`` come first). Returns a module with ``forward`` (logits ``(B, 10)``),
    ``features_and_logits`` and ``test_accuracy``.
    """
    if dataset not in JUDGE_SETS:
        raise ValueError(f"judge dataset must be one of {list(JUDGE_SETS)}, got {dataset!r}")
    # The first call may come from a validation loop (Lightning's inference mode) on a machine with no cached judge:
    # training it needs autograd, and its weights must not be inference tensors.
    with torch.inference_mode(False), torch.enable_grad():
        return _load_or_train(dataset, settings)


def _load_or_train(dataset: str, settings: dict[str, object]) -> DigitJudge:
    """:func:`judge_classifier`'s body, run with autograd on."""
    config = JudgeConfig(dataset=dataset, **{**DATASET_DEFAULTS[dataset], **settings})  # type: ignore[arg-type]
    path = judge_cache_dir() / f"{dataset}-{config.key()}.pt"
    judge = DigitJudge(JUDGE_SETS[dataset], tuple(config.channels), config.features)
    state = None
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            judge.load_state_dict(state["weights"])
            judge.test_accuracy = float(state["test_accuracy"])
        except Exception:  # a truncated or foreign file: train again and overwrite it
            state = None
    if state is None:
        judge = train_judge(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save({"weights": judge.state_dict(), "test_accuracy": judge.test_accuracy,
                    "config": {**asdict(config), "version": JUDGE_VERSION}}, tmp)
        os.replace(tmp, path)
    judge.eval()
    judge.requires_grad_(False)
    return judge


__all__ = ["DigitJudge", "JudgeConfig", "judge_accuracy", "judge_cache_dir", "judge_classifier", "judge_splits",
           "train_judge"]
