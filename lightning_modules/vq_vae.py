"""VQ-VAE LightningModule: the autoencoder and its quantiser first, then (the last ``prior_epochs`` epochs) the prior
over their frozen code grids; reconstruction MSE, code perplexity and usage, prior NLL; reconstructions and prior
samples to the dashboard.

Post: VQ-VAE的简明介绍：量子化自编码器 (https://kexue.fm/archives/6760); van den Oord et al. 2017.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.metrics.missing import missing_figures, not_computed
from kexue.models.vq_vae import CodePrior, ConvAutoencoder, VQVAENetwork
from kexue.nn.components import build_component, component_config
from kexue.nn.quantize import CodeUsage, VectorQuantizer
from kexue.platform.figures import image_grid_figure, log_figure


class VQVAE(L.LightningModule):
    """Batches ``(x (B, C, H, W) in [0, 1], y)``; ``y`` is not used.

    Three network components, each swapped by class path: the ``autoencoder`` (``encode``: images -> code vectors
    ``(B, D, H', W')``, ``decode`` back, a ``grid = (H', W')``; its ``data_shape`` linked from ``data.data_shape``),
    the ``quantizer`` between them (``forward(z) -> VQOutput``, ``quantize``, ``lookup``, ``num_codes``; its
    ``code_dim`` linked from the autoencoder's; ``--model.quantizer.ema true`` for the moving-average codebook,
    ``--model.quantizer null`` for the plain autoencoder with the same bottleneck and no prior), and the ``prior``
    over the flattened code grid (``forward(codes (B, T)) -> logits (B, T, K)``, ``sample``, ``num_codes`` linked
    from the quantiser's, ``positions``). :class:`~kexue.models.vq_vae.VQVAENetwork` composes them and checks the
    prior's sizes; this module trains, evaluates and samples that composition.

    The options left here are the ones no single network owns: the two-stage schedule (which epochs train which
    network, and the learning rate of each stage) and the test-time sampling of the whole model.

    Args:
        autoencoder: encoder + decoder (:class:`~kexue.models.vq_vae.ConvAutoencoder`).
        quantizer: the bottleneck (:class:`~kexue.nn.quantize.VectorQuantizer`), or ``None``: the plain autoencoder,
            which has no codes and no prior and stops after ``max_epochs - prior_epochs`` epochs (the VQ-VAE's
            autoencoder budget).
        prior: the autoregressive prior (:class:`~kexue.models.vq_vae.CodePrior`), or ``None``.
        prior_epochs: the last this many epochs of ``trainer.max_epochs`` train the prior on the frozen codes.
        lr: Adam learning rate of the autoencoder and quantiser; prior_lr: of the prior.
        num_samples: images sampled from the prior at test time; temperature: of that sampling.
    """

    ddp_unused_parameters: ClassVar[bool] = True  # each stage trains one half: DDP must be told (the CLI does)

    def __init__(
        self,
        autoencoder: nn.Module = lazy_instance(ConvAutoencoder),  # noqa: B008 (jsonargparse shows the class_path)
        quantizer: nn.Module | None = lazy_instance(VectorQuantizer, num_codes=64, code_dim=16),  # noqa: B008
        prior: nn.Module | None = lazy_instance(CodePrior, num_codes=64),  # noqa: B008
        prior_epochs: int = 25,
        lr: float = 1e-3,
        prior_lr: float = 2e-3,
        num_samples: int = 64,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if prior_epochs < 0 or num_samples < 1:
            raise ValueError(f"model.prior_epochs must be >= 0 and model.num_samples >= 1, got {prior_epochs}, "
                             f"{num_samples}")
        if lr < 0 or prior_lr < 0:
            raise ValueError(f"model.lr and model.prior_lr must be >= 0, got {lr} and {prior_lr}")
        if temperature <= 0:
            raise ValueError(f"model.temperature must be > 0, got {temperature}")
        autoencoder, quantizer, prior = map(component_config, (autoencoder, quantizer, prior))
        self.save_hyperparameters()  # before building: see component_config
        self.net = VQVAENetwork(build_component(autoencoder), None if quantizer is None else build_component(quantizer),
                                None if prior is None else build_component(prior))
        if self.net.quantizer is not None:
            num_codes = self.net.quantizer.num_codes
            self.val_usage, self.test_usage = CodeUsage(num_codes), CodeUsage(num_codes)
        # Steps the prior has trained (kept in the checkpoint): 0 when a run stopped before the prior's stage,
        # whose NLL and samples would then be a figure of an untrained network. None: a checkpoint from before.
        self.prior_steps: int | None = 0

    @property
    def prior_trained(self) -> bool:
        """Whether the prior has trained at least one step (True for a checkpoint that does not say)."""
        return self.net.prior is not None and self.prior_steps != 0

    def _prior_not_trained(self, stage: str) -> None:
        """The prior's figures of ``stage`` are not computed: say why in their place (:mod:`kexue.metrics.missing`)."""
        max_epochs = self.trainer.max_epochs
        not_computed(self, f"{stage}/prior_nll", f"the prior never trained: training stopped after "
                     f"{self.global_step} step(s), before the prior's stage (the last "
                     f"model.prior_epochs={self.hparams.prior_epochs} of trainer.max_epochs={max_epochs}; "
                     "trainer.max_steps / max_time / early stopping end it sooner)", sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["prior_steps"] = self.prior_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.prior_steps = checkpoint.get("prior_steps")

    def _prior_stage(self) -> bool:
        """True in the epochs that train the prior (the autoencoder frozen); fast_dev_run does both in one step."""
        max_epochs = self.trainer.max_epochs or 0
        if self.net.prior is None or self.trainer.fast_dev_run:
            return False
        return max_epochs > 0 and self.current_epoch >= max_epochs - self.hparams.prior_epochs

    def on_fit_start(self) -> None:
        max_epochs = self.trainer.max_epochs or 0
        if not self.trainer.fast_dev_run and 0 < max_epochs <= self.hparams.prior_epochs:
            raise ValueError(f"model.prior_epochs={self.hparams.prior_epochs} leaves no epoch for the autoencoder "
                             f"with trainer.max_epochs={max_epochs}")

    def on_train_epoch_end(self) -> None:
        # Without a prior the model stops where the VQ-VAE's autoencoder stage ends (the same budget).
        max_epochs = self.trainer.max_epochs or 0  # -1: no limit, nothing to stop at
        last = max_epochs - self.hparams.prior_epochs  # the epochs the VQ-VAE gives its autoencoder
        if self.net.prior is None and max_epochs > 0 and self.current_epoch + 1 >= last:
            self.trainer.should_stop = True

    def forward(self, x: Tensor) -> Tensor:
        """Reconstructions ``(B, C, H, W)`` in [0, 1] of ``x`` ``(B, C, H, W)``."""
        return self.net(x)[0].clamp(0, 1)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, n = batch[0], len(batch[0])
        loss = x.new_zeros(())
        if not self._prior_stage():
            x_hat, vq = self.net(x)
            mse = F.mse_loss(x_hat.float(), x)
            loss = mse + (vq.loss if vq is not None else 0.0)
            self.log_dict({"train/mse": mse, "train/loss": loss}, prog_bar=True, batch_size=n)
            if vq is not None:
                restarts = getattr(self.net.quantizer, "restarts", torch.zeros(())).float()
                self.log_dict({"train/commitment": vq.commitment_loss, "train/codebook": vq.codebook_loss,
                               "train/restarts": restarts}, batch_size=n)
        if self.net.prior is not None and (self._prior_stage() or self.trainer.fast_dev_run):
            nll = self.net.prior_nll(x)
            loss = loss + nll
            self.prior_steps = (self.prior_steps or 0) + 1
            self.log("train/prior_nll", nll, prog_bar=True, batch_size=n)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, n = batch[0], len(batch[0])
        x_hat, vq = self.net(x)
        x_hat = x_hat.float().clamp(0, 1)  # images: the metric and the figures see pixels in [0, 1]
        self.log(f"{stage}/mse", F.mse_loss(x_hat, x), batch_size=n, sync_dist=True, prog_bar=True)
        if vq is not None:
            (self.val_usage if stage == "val" else self.test_usage).update(vq.codes)
        if self.prior_trained:
            self.log(f"{stage}/prior_nll", self.net.prior_nll(x), batch_size=n, sync_dist=True)
        return x_hat

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.net.quantizer is not None:
            self.log_dict({f"val/{k}": v for k, v in self.val_usage.compute().items()}, sync_dist=True)
            self.val_usage.reset()
        if self.net.prior is not None and not self.prior_trained:
            self._prior_not_trained("val")
        elif self.prior_trained:
            missing_figures(self).pop("val/prior_nll", None)  # a figure again, now that the prior trains

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x_hat = self._evaluate(batch, "test")
        if batch_idx == 0:  # originals over their reconstructions, 16 a row
            x = batch[0][:16]
            pairs = torch.cat([x, x_hat[: len(x)]])
            log_figure(self.trainer, "reconstructions/test", image_grid_figure(pairs, columns=len(x)))

    def on_test_epoch_end(self) -> None:
        if self.net.quantizer is not None:
            self.log_dict({f"test/{k}": v for k, v in self.test_usage.compute().items()}, sync_dist=True)
            self.test_usage.reset()
        if self.prior_trained:
            log_figure(self.trainer, "samples/prior", image_grid_figure(self.sample(self.hparams.num_samples)))
        elif self.net.prior is not None:
            self._prior_not_trained("test")  # and no samples from it

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images ``(n, C, H, W)`` in [0, 1] from the prior (:meth:`VQVAENetwork.sample`), in eval mode."""
        was_training = self.training
        self.eval()
        images = self.net.sample(n, self.hparams.temperature, generator)
        self.train(was_training)
        return images

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> list[str]:
        """One line per image: its code grid row by row, codes separated by spaces (``kexue predict``)."""
        if self.net.quantizer is None:
            raise ValueError("model.quantizer null has no codes to predict")
        return [" ".join(map(str, row)) for row in self.net.encode_codes(batch[0]).flatten(1).tolist()]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Adam skips parameters without a gradient: the prior's while the autoencoder trains, then the reverse.
        prior = {id(p) for p in self.net.prior.parameters()} if self.net.prior is not None else set()
        groups = [{"params": [p for p in self.net.parameters() if id(p) not in prior], "lr": self.hparams.lr}]
        if self.net.prior is not None:
            groups.append({"params": self.net.prior.parameters(), "lr": self.hparams.prior_lr})
        return torch.optim.Adam(groups)
