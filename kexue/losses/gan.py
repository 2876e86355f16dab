"""The losses of GANs read as variational inference, and of the VAE baseline, as plain functions.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716; arXiv 1807.05936). Read as
variational inference, the generator's loss is the usual ``-log D(G(z))`` plus ``KL(q(x) || q_old(x))``: the new
generator's distribution should stay close to the previous one. With a Gaussian ``q(x|z)`` around ``G(z)`` that KL is
bounded by ``λ · E_z ||G(z) - G_old(z)||²`` — :func:`generator_regularizer`, the term standard GANs leave out. The
VAE baseline minimises the negative ELBO, :func:`bernoulli_negative_elbo`.

:func:`check_gan_options` is the one check of the ``gan`` / ``gan_vae`` tasks' loss and optimiser options.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kexue.errors import UsageError


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``(-E log D(x) - E log(1 - D(G(z)))) / 2`` from the discriminator's logits ``(B,)`` of real and of generated
    images (binary cross-entropy; the mean of both halves, as the post's code): a 0-dim tensor."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


def generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss ``E_z[-log D(G(z))] = E softplus(-logit)`` of logits ``(B,)``: the first
    term of the post's generator objective; a 0-dim tensor."""
    return F.softplus(-fake_logits).mean()


def generator_regularizer(fake: Tensor, old_fake: Tensor) -> Tensor:
    """``E_z ||G(z) - G_old(z)||²`` as the mean over the batch and the pixels of the squared difference of the
    generator's samples ``fake (B, ...)`` and the previous generator's ``old_fake (B, ...)`` on the same ``z`` (no
    gradient through ``old_fake``): the post's ``KL(q(x) || q_old(x))`` term, to be weighted by λ; a 0-dim tensor."""
    return (fake - old_fake.detach()).square().mean()


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` summed over the latent dimension: ``(B, d)`` each -> ``(B,)``."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(-1)


def bernoulli_negative_elbo(logits: Tensor, x: Tensor, mean: Tensor, log_var: Tensor) -> tuple[Tensor, Tensor]:
    """``(reconstruction, kl)``, the batch means of the VAE's negative ELBO terms (float32 under autocast).

    Args:
        logits: the decoder's Bernoulli logits ``(B, C, H, W)`` of one reparameterised ``z ~ q(z|x)``.
        x: the images ``(B, C, H, W)`` in [0, 1]; the reconstruction term is ``BCE(x, logits)`` summed over pixels.
        mean, log_var: the encoder's Gaussian posterior ``q(z|x)``, ``(B, d)`` each; the KL is :func:`gaussian_kl`.
    """
    rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(-1)  # (B,)
    return rec.mean(), gaussian_kl(mean.float(), log_var.float()).mean()


_RULES = {
    "generator_steps": (lambda v: v >= 1, ">= 1"), "old_every": (lambda v: v >= 1, ">= 1"),
    "num_samples": (lambda v: v >= 2, ">= 2"), "reg_weight": (lambda v: v >= 0, ">= 0 (0 = plain GAN)"),
    "lr": (lambda v: v > 0, "> 0"), "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "d_lr_multiplier": (lambda v: v > 0, "> 0"),
    "judge": (lambda v: v in ("auto", "mnist5k", "digits", "none"), "auto, mnist5k, digits or none"),
}


def check_gan_options(**values: float | str) -> None:
    """:class:`UsageError` naming ``model.<option>`` for the first bad value among the given options of the GAN / VAE
    tasks: ``generator_steps``, ``old_every`` >= 1, ``num_samples`` >= 2, ``reg_weight`` >= 0, ``lr`` > 0,
    ``beta1`` in [0, 1), ``d_lr_multiplier`` > 0, ``judge`` one of auto / mnist5k / digits / none."""
    for name, value in values.items():
        test, text = _RULES[name]
        if not test(value):
            raise UsageError(f"model.{name} must be {text}, got {value!r}")


__all__ = ["bernoulli_negative_elbo", "check_gan_options", "discriminator_loss", "gaussian_kl", "generator_loss",
           "generator_regularizer"]
