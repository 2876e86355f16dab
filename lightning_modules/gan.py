"""GAN with the variational-inference regulariser, and a VAE baseline, scored by the digit judge.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716). The generator minimises
``-log D(G(z)) + λ · mean (G(z) - G_old(z))²`` (:mod:`kexue.models.gan`); ``λ = 0`` is the plain GAN. Both models log
an Inception-score-like and a Fréchet-distance-like score of their samples under :func:`kexue.models.judge_classifier`
(``val/is``, ``val/fid`` against the validation images; ``test/*`` against the test images) and a sample grid each
epoch.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import lightning as L
import torch
from torch import Tensor

from kexue.distributed import gather_in_dataset_order
from kexue.models import gan as blocks
from kexue.models.judge import frechet_distance, inception_score, judge_classifier
from kexue.optim import scaled_param_groups
from kexue.platform.figures import image_grid_figure, log_figure


class JudgedGenerator(L.LightningModule):
    """Shared by :class:`GAN` and :class:`VAE`: argument checks, the fixed latent codes, the judge, and the
    ``{val,test}/is`` / ``{val,test}/fid`` scores of ``num_samples`` samples; subclasses define :meth:`sample`.

    ``judge``: ``auto`` (MNIST-5k's judge for images of side >= 16, the 8 × 8 digits' otherwise), ``mnist5k``,
    ``digits``, or ``none`` (no scores, only grids).
    """

    def _check(self, data_shape: list[int] | None, latent_dim: int, num_samples: int, lr: float, judge: str) -> None:
        blocks.check_arguments(data_shape, latent_dim=latent_dim, num_samples=num_samples, lr=lr, judge=judge)
        seed = torch.Generator().manual_seed(1234)  # the same codes for every run: grids are comparable
        self.register_buffer("fixed_z", torch.randn(num_samples, latent_dim, generator=seed), persistent=False)
        self._judge: list = []  # a list, so the judge is no submodule: not trained, not in the checkpoint
        self._real: list[Tensor] = []

    def sample(self, z: Tensor) -> Tensor:
        """Images ``(B, 1, H, W)`` in [0, 1] from latent codes ``z (B, latent_dim)``."""
        raise NotImplementedError

    @property
    def judge(self) -> torch.nn.Module | None:
        """The frozen judge (loaded or trained once, on this module's device), or None for ``judge: none``."""
        name = self.hparams.judge
        if name == "none":
            return None
        if not self._judge:
            name = name if name != "auto" else ("mnist5k" if self.hparams.data_shape[1] >= 16 else "digits")
            self._judge.append(judge_classifier(name))
        return self._judge[0].to(self.device)

    def _collect(self, batch: tuple[Tensor, Tensor]) -> None:
        if self.judge is not None:
            self._real.append(self.judge.features_and_logits(batch[0].float())[0].float())

    @torch.no_grad()
    def _score(self, stage: str) -> None:
        samples = torch.cat([self.sample(z).float() for z in self.fixed_z.split(250)])  # (N, 1, H, W)
        if stage == "val":
            grid = image_grid_figure(samples[:64], title=f"epoch {self.current_epoch}")
            log_figure(self.trainer, "samples/epoch", grid)
        if self.judge is None or not self._real:
            return
        features, logits = (t.float() for t in self.judge.features_and_logits(samples))
        loader = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        real, self._real = gather_in_dataset_order(torch.cat(self._real), len(loader.dataset)), []  # every process's
        self.log(f"{stage}/is", inception_score(logits.softmax(-1)), prog_bar=stage == "val", sync_dist=True)
        self.log(f"{stage}/fid", frechet_distance(features, real), prog_bar=stage == "val", sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")


class GAN(JudgedGenerator):
    """DCGAN-size GAN trained by manual optimisation (a discriminator step, then ``generator_steps`` generator steps
    on the same ``z``) with the post's regulariser ``reg_weight · mean (G(z) - G_old(z))²``.

    Args:
        data_shape: ``[1, H, W]`` (linked from ``data.data_shape``). latent_dim: size of ``z ~ N(0, I)``.
        width: channels of the first generator / discriminator convolution (the second has twice as many).
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

    def __init__(self, data_shape: list[int] | None = None, latent_dim: int = 64, width: int = 32,
                 reg_weight: float = 5.0, generator_steps: int = 2, old_every: int = 1, lr: float = 5e-4,
                 beta1: float = 0.5, d_lr_multiplier: float = 1.0, num_samples: int = 500,
                 judge: Literal["auto", "mnist5k", "digits", "none"] = "auto") -> None:
        super().__init__()
        blocks.check_arguments(data_shape, reg_weight=reg_weight, width=width, generator_steps=generator_steps,
                               old_every=old_every, beta1=beta1, d_lr_multiplier=d_lr_multiplier)
        self._check(data_shape, latent_dim, num_samples, lr, judge)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = blocks.DCGANGenerator(latent_dim, data_shape, width, output="tanh")
        self.discriminator = blocks.DCGANDiscriminator(data_shape, width)
        self.old_generator = copy.deepcopy(self.generator).requires_grad_(False)
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
        z = torch.randn(len(real), hp.latent_dim, device=self.device)  # (B, d)
        d_loss = blocks.discriminator_loss(self.discriminator(real), self.discriminator(self.generator(z).detach()))
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
            adversarial = blocks.generator_loss(self.discriminator(fake))
            reg = blocks.generator_regularizer(fake, old_fake)
            g_opt.zero_grad()
            self.manual_backward(adversarial + hp.reg_weight * reg)
            g_opt.step()
        self.discriminator.requires_grad_(True)
        self.log_dict({"train/d_loss": d_loss, "train/g_loss": adversarial, "train/reg": reg}, prog_bar=True,
                      batch_size=len(real))


class VAE(JudgedGenerator):
    """The baseline: a Gaussian-latent VAE with a Bernoulli decoder of the same DCGAN generator, trained on the
    negative ELBO ``BCE(x, decoder(z)) + KL(q(z|x) || N(0, I))`` (summed over pixels / latents, mean over the
    batch); samples are the decoder's means ``sigmoid(decoder(z))``, ``z ~ N(0, I)``. Arguments as :class:`GAN`'s."""

    def __init__(self, data_shape: list[int] | None = None, latent_dim: int = 64, width: int = 32, lr: float = 1e-3,
                 num_samples: int = 500, judge: Literal["auto", "mnist5k", "digits", "none"] = "auto") -> None:
        super().__init__()
        blocks.check_arguments(data_shape, width=width)
        self._check(data_shape, latent_dim, num_samples, lr, judge)
        self.save_hyperparameters()
        self.encoder = blocks.ConvEncoder(latent_dim, data_shape, width)
        self.decoder = blocks.DCGANGenerator(latent_dim, data_shape, width, output="logits")

    def sample(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z))  # (B, 1, H, W) in [0, 1]

    def negative_elbo(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)`` batch means of images ``x (B, 1, H, W)`` in [0, 1]."""
        return blocks.vae_negative_elbo(self.encoder, self.decoder, x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        rec, kl = self.negative_elbo(batch[0])
        self.log_dict({"train/loss": rec + kl, "train/rec": rec, "train/kl": kl}, prog_bar=True,
                      batch_size=len(batch[0]))
        return rec + kl

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("val/loss", sum(self.negative_elbo(batch[0])), batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(scaled_param_groups([{"params": list(self.parameters())}], self.hparams.lr))
