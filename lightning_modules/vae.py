"""Task ``gan_vae``: the VAE baseline of the GAN post, on the GAN's generator network, scored by the same judge.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716). A second registered task rather
than a preset of ``gan``: the CLI cannot swap the LightningModule class, and this is another training procedure
(the negative ELBO under automatic optimisation, see :mod:`kexue.lightning_modules.gan`).
"""

from __future__ import annotations

from typing import Literal

import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.lightning_modules.judged_generator import JudgedGenerator
from kexue.losses.gan import bernoulli_negative_elbo, check_gan_options
from kexue.models.gan import ConvEncoder, DCGANGenerator
from kexue.nn.components import build_component, component_config
from kexue.optim import scaled_param_groups


class VAE(JudgedGenerator):
    """A Gaussian-latent VAE with a Bernoulli decoder, trained on the negative ELBO ``BCE(x, decoder(z)) +
    KL(q(z|x) || N(0, I))`` (summed over pixels / latents, mean over the batch); samples are the decoder's means
    ``sigmoid(decoder(z))``, ``z ~ N(0, I)``.

    Args:
        encoder: images ``(B, 1, H, W)`` in [0, 1] -> ``(mean, log_var)`` each ``(B, latent_dim)``, with a
            ``latent_dim`` attribute. decoder: codes ``(B, latent_dim)`` -> Bernoulli logits ``(B, 1, H, W)``, with
            the same ``latent_dim`` (set both: ``--model.encoder.latent_dim 16 --model.decoder.latent_dim 16``).
        lr: Adam's learning rate; num_samples, judge: see :class:`JudgedGenerator`.
    """

    def __init__(
        self,
        encoder: nn.Module = lazy_instance(ConvEncoder, latent_dim=64, width=32),  # noqa: B008 (class_path default)
        decoder: nn.Module = lazy_instance(  # noqa: B008
            DCGANGenerator, latent_dim=64, width=32, output="logits"),
        lr: float = 1e-3,
        num_samples: int = 500,
        judge: Literal["auto", "mnist5k", "digits", "none"] = "auto",
    ) -> None:
        encoder, decoder = component_config(encoder), component_config(decoder)  # see component_config
        super().__init__()
        check_gan_options(lr=lr, num_samples=num_samples, judge=judge)
        self.save_hyperparameters()
        self.encoder = build_component(encoder)
        self.decoder = build_component(decoder)
        sizes = getattr(self.encoder, "latent_dim", None), getattr(self.decoder, "latent_dim", None)
        if sizes[0] != sizes[1]:
            raise UsageError(f"model.encoder's latent_dim ({sizes[0]}) and model.decoder's ({sizes[1]}) must be "
                             "equal: set --model.encoder.latent_dim and --model.decoder.latent_dim together")
        self.setup_scoring(sizes[1], num_samples, judge)

    def sample(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z))  # (B, 1, H, W) in [0, 1]

    def negative_elbo(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)`` batch means for images ``x (B, 1, H, W)`` in [0, 1], one reparameterised
        ``z ~ q(z|x)`` per image."""
        mean, log_var = self.encoder(x)  # (B, d) each
        z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)  # (B, d)
        return bernoulli_negative_elbo(self.decoder(z), x, mean, log_var)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        rec, kl = self.negative_elbo(batch[0])
        self.log_dict({"train/loss": rec + kl, "train/rec": rec, "train/kl": kl}, prog_bar=True,
                      batch_size=len(batch[0]))
        return rec + kl

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("val/loss", sum(self.negative_elbo(batch[0])), batch_size=len(batch[0]), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(scaled_param_groups([{"params": list(self.parameters())}], self.hparams.lr))
