"""Task ``gan``: a GAN with the variational-inference regulariser, scored by the digit judge.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716). The generator minimises
``-log D(G(z)) + λ · mean (G(z) - G_old(z))²`` (:mod:`kexue.losses.gan`); ``λ = 0`` is the plain GAN. The generator
and the discriminator are components (:mod:`kexue.models.gan` by default), their ``data_shape`` linked from
``data.data_shape``; scores and sample grids are :class:`~kexue.lightning_modules.judged_generator.JudgedGenerator`'s.

Its VAE baseline is a second task (``gan_vae``, :mod:`kexue.lightning_modules.vae`), not a preset of this one: a
preset can only set arguments of one LightningModule class, and the VAE is another training procedure (one loss,
automatic optimisation) where the GAN trains two networks by hand with two optimizers; one class serving both would
branch on a mode string in every hook.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import torch
from jsonargparse import lazy_instance
from torch import Tensor, nn

from kexue.lightning_modules.judged_generator import JudgedGenerator
from kexue.losses.gan import check_gan_options, discriminator_loss, generator_loss, generator_regularizer
from kexue.models.gan import DCGANDiscriminator, DCGANGenerator
from kexue.nn.components import build_component, component_config
from kexue.optim import scaled_param_groups


class GAN(JudgedGenerator):
    """DCGAN-size GAN trained by manual optimisation (a discriminator step, then ``generator_steps`` generator steps
    on the same ``z``) with the post's regulariser ``reg_weight · mean (G(z) - G_old(z))²``.

    Args:
        generator: codes ``z (B, latent_dim)`` -> images ``(B, 1, H, W)`` in [-1, 1], with a ``latent_dim``
            attribute (``z ~ N(0, I)`` is drawn with it). discriminator: images ``(B, 1, H, W)`` -> logits ``(B,)``.
        reg_weight: λ (0 = plain GAN; 5 is the post's code's weight on the pixel-mean squared error in [-1, 1]).
        generator_steps: generator updates per discriminator update, all against the same ``G_old(z)`` (2 in the
            post's code; with 1 the regulariser and its gradient are 0 at ``G = G_old``).
        old_every: the frozen copy ``G_old`` is refreshed from ``G`` every this many iterations (1: the post's
            "previous generator", taken just before each iteration's generator update).
        lr, beta1: Adam of both networks (the post's code: 2e-4, 0.5); d_lr_multiplier: the discriminator's rate
            relative to ``lr`` (a parameter group's ``lr_multiplier``).
        num_samples: samples scored each validation; judge: see :class:`JudgedGenerator`.
    """

    ddp_unused_parameters: ClassVar[bool] = True  # the D step leaves G without gradients: DDP must be told

    def __init__(
        self,
        generator: nn.Module = lazy_instance(  # noqa: B008 (a default jsonargparse shows as class_path/init_args)
            DCGANGenerator, latent_dim=64, width=32, output="tanh"),
        discriminator: nn.Module = lazy_instance(DCGANDiscriminator, width=32),  # noqa: B008
        reg_weight: float = 5.0,
        generator_steps: int = 2,
        old_every: int = 1,
        lr: float = 5e-4,
        beta1: float = 0.5,
        d_lr_multiplier: float = 1.0,
        num_samples: int = 500,
        judge: Literal["auto", "mnist5k", "digits", "none"] = "auto",
    ) -> None:
        generator, discriminator = component_config(generator), component_config(discriminator)  # see component_config
        super().__init__()
        check_gan_options(reg_weight=reg_weight, generator_steps=generator_steps, old_every=old_every, lr=lr,
                          beta1=beta1, d_lr_multiplier=d_lr_multiplier, num_samples=num_samples, judge=judge)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = build_component(generator)
        self.discriminator = build_component(discriminator)
        self.old_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.setup_scoring(getattr(self.generator, "latent_dim", None), num_samples, judge)
        self._iteration = 0

    def sample(self, z: Tensor) -> Tensor:
        return (self.generator(z) + 1) / 2  # (B, 1, H, W) in [0, 1]

    def parameter_groups(self) -> list[dict]:
        """Two named groups, one per optimizer: ``generator`` and ``discriminator`` (with ``d_lr_multiplier``)."""
        return [{"params": list(self.generator.parameters()), "name": "generator"},
                {"params": list(self.discriminator.parameters()), "name": "discriminator",
                 "lr_multiplier": self.hparams.d_lr_multiplier}]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        groups = scaled_param_groups(self.parameter_groups(), self.hparams.lr)
        betas = (self.hparams.beta1, 0.999)
        return [torch.optim.Adam([g for g in groups if g["name"] == name], betas=betas)
                for name in ("generator", "discriminator")]

    def on_fit_start(self) -> None:
        if len(self.trainer.optimizers) != 2:
            raise ValueError("the GAN trains two Adam optimizers of its own (generator, discriminator); "
                             "--optimizer is not supported, set model.lr / model.beta1 / model.d_lr_multiplier")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        hp = self.hparams
        g_opt, d_opt = self.optimizers()
        real = batch[0] * 2 - 1  # (B, 1, H, W) in [-1, 1], the generator's range
        z = torch.randn(len(real), self.generator.latent_dim, device=self.device)  # (B, d)
        d_loss = discriminator_loss(self.discriminator(real), self.discriminator(self.generator(z).detach()))
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()
        if self._iteration % hp.old_every == 0:
            self.old_generator.load_state_dict(self.generator.state_dict())
        self._iteration += 1
        with torch.no_grad():
            old_fake = self.old_generator(z)  # (B, 1, H, W); also at λ = 0, to log how far G moves
        self.discriminator.requires_grad_(False)  # its gradients are not needed for the generator's steps
        for _ in range(hp.generator_steps):
            fake = self.generator(z)
            adversarial = generator_loss(self.discriminator(fake))
            reg = generator_regularizer(fake, old_fake)
            g_opt.zero_grad()
            self.manual_backward(adversarial + hp.reg_weight * reg)
            g_opt.step()
        self.discriminator.requires_grad_(True)
        self.log_dict({"train/d_loss": d_loss, "train/g_loss": adversarial, "train/reg": reg}, prog_bar=True,
                      batch_size=len(real))
