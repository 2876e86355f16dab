"""GANs as variational inference (kexue.fm/archives/5716): the losses against independent forms, the regulariser's
gradient and its pull towards the previous generator, manual optimisation with two optimizers, the VAE baseline."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch

from kexue.models.gan import (
    ConvEncoder,
    DCGANDiscriminator,
    DCGANGenerator,
    discriminator_loss,
    gaussian_kl,
    generator_loss,
    generator_regularizer,
)


def test_losses_match_their_formulas() -> None:
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected_d = (np.mean([-math.log(sig(v)) for v in real.tolist()])
                  + np.mean([-math.log(1 - sig(v)) for v in fake.tolist()])) / 2
    assert float(discriminator_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(generator_loss(fake)) == pytest.approx(np.mean([-math.log(sig(v)) for v in fake.tolist()]), rel=1e-6)
    mean, log_var = torch.randn(4, 3), torch.randn(4, 3)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, (0.5 * log_var).exp()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_var), reference)


def test_regularizer_is_the_mean_squared_distance_and_pulls_towards_the_old_samples() -> None:
    fake = torch.randn(3, 1, 4, 4, requires_grad=True)
    old = torch.randn(3, 1, 4, 4)
    value = generator_regularizer(fake, old)
    brute = sum((a - b) ** 2 for a, b in zip(fake.detach().flatten().tolist(), old.flatten().tolist())) / 48
    assert float(value) == pytest.approx(brute, rel=1e-6)
    value.backward()
    torch.testing.assert_close(fake.grad, 2 * (fake.detach() - old) / 48)  # descent moves fake towards old
    same = fake.detach().clone().requires_grad_(True)
    generator_regularizer(same, same.detach()).backward()  # at G = G_old: value and gradient 0
    assert torch.count_nonzero(same.grad) == 0


def test_networks_map_shapes() -> None:
    for shape in ([1, 28, 28], [1, 8, 8]):
        g = DCGANGenerator(5, shape, 4)
        x = g(torch.randn(6, 5))
        assert x.shape == (6, *shape) and x.abs().max() <= 1
        assert DCGANDiscriminator(shape, 4)(x).shape == (6,)
        mean, log_var = ConvEncoder(5, shape, 4)(x)
        assert mean.shape == log_var.shape == (6, 5)
    with pytest.raises(ValueError, match="multiples of 4"):
        DCGANGenerator(5, [1, 10, 10])


def _fit(model: L.LightningModule, batches: int) -> None:
    from kexue.datamodules.images import ImageDataModule

    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=ImageDataModule(dataset="digits", batch_size=32))


def _moved(reg_weight: float) -> float:
    """Mean squared distance of the generator's samples from the initial generator's after 4 iterations."""
    from kexue.lightning_modules.gan import GAN

    torch.manual_seed(0)
    model = GAN(data_shape=[1, 8, 8], latent_dim=8, width=8, reg_weight=reg_weight, generator_steps=3, lr=1e-2,
                judge="none")
    start = DCGANGenerator(8, [1, 8, 8], 8)
    start.load_state_dict(model.generator.state_dict())
    _fit(model, 4)
    assert model._iteration == 4
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    model.generator.train(), start.train()
    with torch.no_grad():
        return float((model.generator(z) - start(z)).square().mean())


def test_regularizer_keeps_the_generator_near_its_previous_self() -> None:
    plain, regularised = _moved(0.0), _moved(1000.0)
    assert regularised < 0.5 * plain, (regularised, plain)


def test_two_optimizers_from_the_parameter_groups() -> None:
    from kexue.lightning_modules.gan import GAN

    model = GAN(data_shape=[1, 8, 8], width=4, lr=1e-3, d_lr_multiplier=4.0, judge="none")
    g_opt, d_opt = model.configure_optimizers()
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-3) and d_opt.param_groups[0]["lr"] == pytest.approx(4e-3)
    assert g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert not any(p.requires_grad for p in model.old_generator.parameters())


def test_vae_baseline_trains_and_samples() -> None:
    from kexue.lightning_modules.gan import VAE

    torch.manual_seed(0)
    model = VAE(data_shape=[1, 8, 8], latent_dim=4, width=8, judge="none", num_samples=16)
    x = torch.rand(5, 1, 8, 8)
    rec, kl = model.negative_elbo(x)
    assert rec > 0 and kl >= 0
    _fit(model, 3)
    samples = model.sample(model.fixed_z)
    assert samples.shape == (16, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(reg_weight=-1.0), "model.reg_weight must be >= 0"),
    (dict(latent_dim=0), "model.latent_dim must be >= 1, got 0"),
    (dict(generator_steps=0), "model.generator_steps must be >= 1"),
    (dict(data_shape=[2]), "model.data_shape must be grey images"),
    (dict(judge="inception"), "model.judge must be"),
])
def test_bad_arguments_name_the_option(kwargs: dict, message: str) -> None:
    from kexue.lightning_modules.gan import GAN

    with pytest.raises(ValueError, match=message):
        GAN(**{"data_shape": [1, 8, 8], **kwargs})
