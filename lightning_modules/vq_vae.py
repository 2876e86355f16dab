"""VQ-VAE LightningModule: the autoencoder first, then (the last ``prior_epochs`` epochs) the Transformer prior over
its frozen code grids; reconstruction MSE, code perplexity and usage, prior NLL; reconstructions and prior samples
to the dashboard.

Post: VQ-VAE的简明介绍：量子化自编码器 (https://kexue.fm/archives/6760); van den Oord et al. 2017.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from kexue.models.vq_vae import CodePrior, VQAutoencoder
from kexue.nn.quantize import CodeUsage, VectorQuantizer
from kexue.nn.transformer import TransformerConfig
from kexue.platform.figures import image_grid_figure, log_figure

PRIOR = TransformerConfig(dim=64, num_layers=2, num_heads=4, dropout=0.1, positions="learned", max_length=256)


class VQVAE(L.LightningModule):
    """Batches ``(x (B, 1, H, W) in [0, 1], y)``; ``y`` is not used.

    Args:
        data_shape: ``[C, H, W]`` (linked from ``data.data_shape``).
        quantizer: ``vq`` (codebook loss), ``ema`` (moving-average codebook) or ``none`` (the plain autoencoder with
            the same encoder, decoder and ``code_dim x H' x W'`` bottleneck; no prior: it stops after
            ``max_epochs - prior_epochs`` epochs, the VQ-VAE's autoencoder budget).
        num_codes: codebook size ``K`` (>= 2).
        code_dim: channels ``D`` of the bottleneck.
        hidden: channels of the convolutions.
        stages: stride-2 stages of the encoder (``None``: halve while the sides stay even and >= 4).
        beta: commitment weight (0.25, the post's and the paper's).
        decay: of the EMA codebook.
        restart_after: a code unused for this many training batches moves onto a random encoder output (0: never).
        prior: the causal Transformer of the prior.
        prior_epochs: the last this many epochs of ``trainer.max_epochs`` train the prior on the frozen codes.
        lr: Adam learning rate of the autoencoder; prior_lr: of the prior.
        num_samples: images sampled from the prior at test time; temperature: of that sampling.
    """

    ddp_unused_parameters: ClassVar[bool] = True  # each stage trains one half: DDP must be told (the CLI does)

    def __init__(
        self,
        data_shape: list[int] | None = None,
        quantizer: Literal["vq", "ema", "none"] = "vq",
        num_codes: int = 64,
        code_dim: int = 16,
        hidden: int = 64,
        stages: int | None = None,
        beta: float = 0.25,
        decay: float = 0.99,
        restart_after: int = 100,
        prior: TransformerConfig = PRIOR,
        prior_epochs: int = 25,
        lr: float = 1e-3,
        prior_lr: float = 2e-3,
        num_samples: int = 64,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if data_shape is None or len(data_shape) != 3:
            raise ValueError(f"model.data_shape must be [C, H, W] images (linked from data.data_shape; VQ-VAE takes no "
                             f"2-D points), got {data_shape}")
        for name, value, low in (("num_codes", num_codes, 2), ("code_dim", code_dim, 1), ("hidden", hidden, 1),
                                 ("prior_epochs", prior_epochs, 0), ("restart_after", restart_after, 0),
                                 ("num_samples", num_samples, 1)):
            if value < low:
                raise ValueError(f"model.{name} must be >= {low}, got {value}")
        if beta < 0:
            raise ValueError(f"model.beta must be >= 0, got {beta}")
        if not 0 <= decay < 1:
            raise ValueError(f"model.decay must be in [0, 1), got {decay}")
        if lr < 0 or prior_lr < 0:
            raise ValueError(f"model.lr and model.prior_lr must be >= 0, got {lr} and {prior_lr}")
        if temperature <= 0:
            raise ValueError(f"model.temperature must be > 0, got {temperature}")
        if stages is not None and stages < 0:
            raise ValueError(f"model.stages must be >= 0, got {stages}")
        self.save_hyperparameters()
        vq = None if quantizer == "none" else VectorQuantizer(num_codes, code_dim, beta, ema=quantizer == "ema",
                                                               decay=decay, restart_after=restart_after)
        try:
            self.net = VQAutoencoder(data_shape, hidden, code_dim, stages, vq)
        except ValueError as err:
            raise ValueError(f"model.stages: {err}") from err
        self.length = self.net.grid[0] * self.net.grid[1]
        self.prior = None
        if vq is not None:
            config = TransformerConfig.coerce(prior)
            if config.positions == "learned" and self.length > config.max_length:
                raise ValueError(f"model.prior.max_length={config.max_length} is shorter than the code grid "
                                 f"{self.net.grid[0]}x{self.net.grid[1]} = {self.length} codes")
            self.prior = CodePrior(num_codes, config)
            self.val_usage, self.test_usage = CodeUsage(num_codes), CodeUsage(num_codes)

    def _prior_stage(self) -> bool:
        """True in the epochs that train the prior (the autoencoder frozen); fast_dev_run does both in one step."""
        max_epochs = self.trainer.max_epochs or 0
        if self.prior is None or self.trainer.fast_dev_run:
            return False
        return max_epochs > 0 and self.current_epoch >= max_epochs - self.hparams.prior_epochs

    def on_fit_start(self) -> None:
        max_epochs = self.trainer.max_epochs or 0
        if not self.trainer.fast_dev_run and 0 < max_epochs <= self.hparams.prior_epochs:
            raise ValueError(f"model.prior_epochs={self.hparams.prior_epochs} leaves no epoch for the autoencoder "
                             f"with trainer.max_epochs={max_epochs}")

    def on_train_epoch_end(self) -> None:
        # The plain autoencoder has no prior: it stops where the VQ-VAE's autoencoder stage ends (same budget).
        max_epochs = self.trainer.max_epochs or 0
        if self.prior is None and max_epochs > 0 and self.current_epoch + 1 >= max_epochs - self.hparams.prior_epochs:
            self.trainer.should_stop = True

    def forward(self, x: Tensor) -> Tensor:
        """Reconstructions ``(B, C, H, W)`` in [0, 1] of ``x`` ``(B, C, H, W)``."""
        return self.net(x)[0].clamp(0, 1)

    def _prior_nll(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood (nats per code) of the prior on the codes of ``x``."""
        codes = self.net.encode_codes(x).flatten(1)  # (B, T)
        return F.cross_entropy(self.prior(codes).flatten(0, 1).float(), codes.flatten())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, n = batch[0], len(batch[0])
        loss = x.new_zeros(())
        if not self._prior_stage():
            x_hat, vq = self.net(x)
            mse = F.mse_loss(x_hat.float(), x)
            loss = mse + (vq.loss if vq is not None else 0.0)
            self.log_dict({"train/mse": mse, "train/loss": loss}, prog_bar=True, batch_size=n)
            if vq is not None:
                self.log_dict({"train/commitment": vq.commitment_loss, "train/codebook": vq.codebook_loss,
                               "train/restarts": self.net.quantizer.restarts.float()}, batch_size=n)
        if self.prior is not None and (self._prior_stage() or self.trainer.fast_dev_run):
            nll = self._prior_nll(x)
            loss = loss + nll
            self.log("train/prior_nll", nll, prog_bar=True, batch_size=n)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, n = batch[0], len(batch[0])
        x_hat, vq = self.net(x)
        x_hat = x_hat.float().clamp(0, 1)  # images: the metric and the figures see pixels in [0, 1]
        self.log(f"{stage}/mse", F.mse_loss(x_hat, x), batch_size=n, sync_dist=True, prog_bar=True)
        if vq is not None:
            (self.val_usage if stage == "val" else self.test_usage).update(vq.codes)
            self.log(f"{stage}/prior_nll", self._prior_nll(x), batch_size=n, sync_dist=True)
        return x_hat

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.prior is not None:
            self.log_dict({f"val/{k}": v for k, v in self.val_usage.compute().items()}, sync_dist=True)
            self.val_usage.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x_hat = self._evaluate(batch, "test")
        if batch_idx == 0:  # originals over their reconstructions, 16 a row
            x = batch[0][:16]
            pairs = torch.cat([x, x_hat[: len(x)]])
            log_figure(self.trainer, "reconstructions/test", image_grid_figure(pairs, columns=len(x)))

    def on_test_epoch_end(self) -> None:
        if self.prior is None:
            return
        self.log_dict({f"test/{k}": v for k, v in self.test_usage.compute().items()}, sync_dist=True)
        self.test_usage.reset()
        log_figure(self.trainer, "samples/prior", image_grid_figure(self.sample(self.hparams.num_samples)))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images ``(n, C, H, W)`` in [0, 1]: code grids sampled from the prior, decoded."""
        was_training = self.training
        self.eval()
        codes = self.prior.sample(n, self.length, self.hparams.temperature, generator)  # (n, T)
        images = self.net.decode_codes(codes.view(n, *self.net.grid))
        self.train(was_training)
        return images

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        """One line per image: its code grid row by row, codes separated by spaces (``kexue predict``)."""
        if self.prior is None:
            raise ValueError("model.quantizer none has no codes to predict")
        return [" ".join(map(str, row)) for row in self.net.encode_codes(batch[0]).flatten(1).tolist()]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Adam skips parameters without a gradient: the prior's while the autoencoder trains, then the reverse.
        groups = [{"params": self.net.parameters(), "lr": self.hparams.lr}]
        if self.prior is not None:
            groups.append({"params": self.prior.parameters(), "lr": self.hparams.prior_lr})
        return torch.optim.Adam(groups)
