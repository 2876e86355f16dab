"""Invertible-ResNet density model (i-ResNet) by maximum likelihood on 2-D points or dequantised images.

Posts: 细水长flow之可逆ResNet (https://kexue.fm/archives/6482), 恒等式 det(exp(A)) = exp(Tr(A)) 赏析
(https://kexue.fm/archives/6377). Points: NLL in nats; images: bits/dim of the discrete images (see
:func:`kexue.nn.flows.bits_per_dim`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.nn.components import build_component, component_config
from kexue.nn.flows import (
    InvertibleResNet,
    bits_per_dim,
    dequantize,
    inverse_logit_transform,
    logit_transform,
)
from kexue.optim.groups import adamw_one_cycle
from kexue.platform.figures import image_grid_figure, log_figure


class FlowModel(L.LightningModule):
    """Fit ``log p(x)`` with a flow component (by default :class:`~kexue.nn.flows.InvertibleResNet`); batches
    ``(x, y)``, ``y`` unused.

    The network is the ``net`` component (``--model.net.lipschitz 0.8``, ``--model.net.network conv``); its ``shape``
    is linked from ``data.data_shape``. A swapped-in flow takes ``shape`` and provides ``shape``, ``exact_logdet``,
    ``log_prob(x, exact, n_terms)`` and ``sample(n, iterations=...)``.

    How the reported NLL is evaluated stays a module option, not the network's, because ``kexue test --ckpt_path``
    must let the user change it (``runtime_arguments``: the checkpoint fixes the network, not these): validation,
    test and predict use the exact log-det (``slogdet``) when the network trains with it or an example has at most
    ``exact_max_dim`` features (2-D points, 8 × 8 digits), otherwise the power series with ``eval_terms`` terms and
    Hutchinson traces. Evaluation batches draw their dequantisation noise from a generator seeded by the batch index
    (the same noise every epoch).

    Args:
        net: the flow, ``(B, *data_shape) -> (z, logdet (B,))``.
        levels: grey levels of the images (0 for real-valued points); linked from ``data.levels``.
        logit_alpha: images only: the flow models ``logit(α + (1 - 2α) z)`` of the dequantised ``z`` (its
            log-det is counted); 0 models ``z - 1/2``.
        eval_terms: series terms of the estimated log-det in validation/test/predict (more: less truncation bias).
        exact_max_dim: evaluation uses the exact log-det when an example has at most this many features.
        inverse_iterations: fixed-point iterations of the inverse when sampling.
        num_samples: samples drawn for the figure each validation epoch.
        grid_size: points per side of the 2-D density figure.
        lr: peak Adam learning rate (one-cycle schedule). weight_decay: AdamW's. warmup: warm-up fraction.

    Post: 细水长flow之可逆ResNet (https://kexue.fm/archives/6482).
    """

    # Evaluation-only knobs: `kexue test flow --ckpt_path X --model.eval_terms 60` takes the user's value.
    runtime_arguments: ClassVar[tuple[str, ...]] = ("eval_terms", "exact_max_dim", "inverse_iterations",
                                                    "num_samples", "grid_size")

    def __init__(
        self,
        net: nn.Module = lazy_instance(InvertibleResNet),  # noqa: B008 (a default jsonargparse shows as class_path)
        levels: int = 0,
        logit_alpha: float = 0.05,
        eval_terms: int = 20,
        exact_max_dim: int = 64,
        inverse_iterations: int = 100,
        num_samples: int = 64,
        grid_size: int = 80,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        warmup: float = 0.05,
    ) -> None:
        super().__init__()
        if levels == 1 or levels < 0:
            raise ValueError(f"model.levels must be 0 (points) or >= 2 grey levels, got {levels}")
        if not 0 <= logit_alpha < 0.5:
            raise ValueError(f"model.logit_alpha must be in [0, 0.5), got {logit_alpha}")
        if eval_terms < 1 or inverse_iterations < 1:
            raise ValueError(f"model.eval_terms and model.inverse_iterations must be >= 1, got {eval_terms}, "
                             f"{inverse_iterations}")
        if lr < 0 or weight_decay < 0 or num_samples < 0 or grid_size < 2:
            raise ValueError(f"model.lr, model.weight_decay, model.num_samples must be >= 0 and model.grid_size "
                             f">= 2, got {lr}, {weight_decay}, {num_samples}, {grid_size}")
        net = component_config(net)  # before save_hyperparameters: see component_config
        self.save_hyperparameters()
        self.net = build_component(net)
        self.dim = math.prod(self.net.shape)
        self._last_batch: Tensor | None = None

    @property
    def is_images(self) -> bool:
        return self.hparams.levels >= 2

    def log_prob(self, x: Tensor) -> Tensor:
        """The network's ``log p(x)`` ``(B,)``: its training log-det in training, the evaluation options' otherwise."""
        if self.training:
            return self.net.log_prob(x)
        exact = self.net.exact_logdet or self.dim <= self.hparams.exact_max_dim
        return self.net.log_prob(x, exact, self.hparams.eval_terms)

    def nll(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Negative log-likelihood ``(B,)`` in nats: of the points, or of the dequantised images on [0, 1)^D."""
        if not self.is_images:
            return -self.log_prob(x)
        z = dequantize(x, self.hparams.levels, generator)
        y, logdet = logit_transform(z, self.hparams.logit_alpha)
        return -(self.log_prob(y) + logdet)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.nll(batch[0]).mean()
        self.log("train/nll", loss, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def _eval_nll(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        """``(x, nll (B,))`` of an evaluation batch: the batch's dequantisation noise is seeded by its index."""
        # Lightning evaluates under inference mode; the log-det needs autograd (Jacobians, vector-Jacobian products).
        with torch.inference_mode(False), torch.enable_grad():
            x = batch[0].clone()
            return x, self.nll(x, torch.Generator().manual_seed(batch_idx)).detach()

    def _evaluate(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> None:
        x, nll = self._eval_nll(batch, batch_idx)
        self.log(f"{stage}/nll", nll.mean(), prog_bar=True, batch_size=len(x), sync_dist=True)
        if self.is_images:
            bpd = bits_per_dim(nll.mean(), self.dim, self.hparams.levels)
            self.log(f"{stage}/bits_per_dim", bpd, prog_bar=True, batch_size=len(x), sync_dist=True)
        if stage == "val" and batch_idx == 0:
            self._last_batch = x[:512]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        """One line per example (``kexue predict`` prints them): its NLL in nats (points) or bits/dim (images)."""
        _, nll = self._eval_nll(batch, batch_idx)
        values = bits_per_dim(nll, self.dim, self.hparams.levels) if self.is_images else nll
        return [f"{v:.4f}" for v in values.tolist()]

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` samples ``(n, *net.shape)``: points, or images in [0, 1] (the inverse of the preprocessing)."""
        x = self.net.sample(n, iterations=self.hparams.inverse_iterations)
        return inverse_logit_transform(x, self.hparams.logit_alpha) if self.is_images else x

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or self.hparams.num_samples == 0:
            return
        samples = self.sample(self.hparams.num_samples).float().cpu()
        if self.is_images:
            log_figure(self.trainer, "val/samples", image_grid_figure(samples, title=f"epoch {self.current_epoch}"))
        else:
            log_figure(self.trainer, "val/density", self.density_figure(samples))

    def density_grid(self, lim: float = 2.5) -> tuple[Tensor, Tensor]:
        """``(log p on a grid_size × grid_size grid over [-lim, lim]², the grid's axis values)``: 2-D points only."""
        axis = torch.linspace(-lim, lim, self.hparams.grid_size, device=self.device)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)  # (G*G, 2), x varies fastest
        with torch.inference_mode(False), torch.enable_grad():
            logp = torch.cat([self.net.log_prob(chunk, exact=True).detach() for chunk in grid.split(2048)])
        return logp.reshape(len(axis), len(axis)), axis

    def density_figure(self, samples: Tensor) -> object:
        """Learned density (exact log-det) beside samples and validation points: the 2-D figure of each epoch."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        logp, axis = self.density_grid()
        lim = float(axis[-1])
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
        left.imshow(logp.exp().cpu().numpy(), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
        left.set_title(f"learned density, epoch {self.current_epoch}")
        if self._last_batch is not None:
            data = self._last_batch.float().cpu()
            right.scatter(data[:, 0], data[:, 1], s=3, c="grey", alpha=0.5, label="val data")
        right.scatter(samples[:, 0], samples[:, 1], s=3, c="tab:red", label="samples")
        right.set_xlim(-lim, lim), right.set_ylim(-lim, lim), right.legend(loc="upper right", fontsize=7)
        right.set_title("samples (inverse of Gaussian draws)")
        return fig

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        return adamw_one_cycle(self.parameters(), hp.lr, hp.weight_decay, hp.warmup,
                               int(self.trainer.estimated_stepping_batches))
