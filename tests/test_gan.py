"""GANs as variational inference (kexue.fm/archives/5716): the losses against independent forms, the regulariser's
gradient and its pull towards the previous generator, manual optimisation with two optimizers, the networks as
components rebuilt from the saved hyperparameters, the judge's scores against the functions on whole sets, and the
VAE baseline's training lowering its loss."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch

from kexue.errors import UsageError
from kexue.losses import (
    bernoulli_negative_elbo,
    discriminator_loss,
    gaussian_kl,
    generator_loss,
    generator_regularizer,
)
from kexue.models.gan import ConvEncoder, DCGANDiscriminator, DCGANGenerator


def component(name: str, **init_args: object) -> dict:
    """A ``kexue.models.gan`` network as the ``{"class_path", "init_args"}`` dict the CLI saves."""
    return {"class_path": f"kexue.models.gan.{name}", "init_args": init_args}


def tiny_gan(**kwargs: object):
    """A GAN of 8 × 8 networks (latent 8, width 8 unless ``generator`` / ``discriminator`` are given)."""
    from kexue.lightning_modules.gan import GAN

    nets = dict(generator=component("DCGANGenerator", latent_dim=8, data_shape=[1, 8, 8], width=8),
                discriminator=component("DCGANDiscriminator", data_shape=[1, 8, 8], width=8))
    return GAN(**{**nets, "judge": "none", **kwargs})


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
    x_bits, logits = (torch.rand(4, 1, 2, 2) > 0.5).float(), torch.randn(4, 1, 2, 2)  # binary: a log-likelihood
    rec, kl = bernoulli_negative_elbo(logits, x_bits, mean, log_var)
    bernoulli = torch.distributions.Bernoulli(logits=logits)
    torch.testing.assert_close(rec, -bernoulli.log_prob(x_bits).flatten(1).sum(-1).mean())
    torch.testing.assert_close(kl, reference.mean())


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
    with pytest.raises(UsageError, match="DCGANGenerator: data_shape must be images"):
        DCGANGenerator(5, [1, 10, 10])
    with pytest.raises(UsageError, match="ConvEncoder: latent_dim must be >= 1, got 0"):
        ConvEncoder(0, [1, 8, 8])


def _fit(model: L.LightningModule, batches: int) -> None:
    from kexue.datamodules.images import ImageDataModule

    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=ImageDataModule(dataset="digits", batch_size=32))


def _moved(reg_weight: float) -> float:
    """Mean squared distance of the generator's samples from the initial generator's after 4 iterations."""
    torch.manual_seed(0)
    model = tiny_gan(reg_weight=reg_weight, generator_steps=3, lr=1e-2)
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
    model = tiny_gan(lr=1e-3, d_lr_multiplier=4.0)
    g_opt, d_opt = model.configure_optimizers()
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-3) and d_opt.param_groups[0]["lr"] == pytest.approx(4e-3)
    assert g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert not any(p.requires_grad for p in model.old_generator.parameters())


def test_networks_are_components_rebuilt_from_the_saved_hyperparameters() -> None:
    from kexue.lightning_modules.gan import GAN

    model = tiny_gan(generator=component("DCGANGenerator", latent_dim=5, data_shape=[1, 8, 8], width=3))
    assert model.fixed_z.shape == (500, 5)  # z's size is the generator's
    assert model.discriminator.convs[0].out_channels == 8 and model.generator.up[0].out_channels == 3
    rebuilt = GAN(**model.hparams)  # what loading a checkpoint does
    rebuilt.load_state_dict(model.state_dict())  # strict: the same networks, shape for shape
    default = GAN(judge="none")  # the lazy_instance defaults, each model its own networks
    assert default.generator is not GAN(judge="none").generator
    assert default.fixed_z.shape == (500, 64) and default.sample(default.fixed_z[:2]).shape == (2, 1, 28, 28)


def test_judge_scores_are_the_functions_on_the_whole_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """val/is and val/fid of a validation run equal the functions on all the validation images' judge features (the
    reference through the data path, batch by batch) and on all the samples'."""
    from kexue.datamodules.images import ImageDataModule
    from kexue.lightning_modules import judged_generator
    from kexue.metrics import frechet_distance, inception_score
    from kexue.models.judge import DigitJudge

    torch.manual_seed(0)
    judge = DigitJudge(side=8, channels=(4, 8), features=128).eval().requires_grad_(False)  # any fixed network
    monkeypatch.setattr(judged_generator, "judge_classifier", lambda name: judge if name == "digits" else None)
    model = tiny_gan(judge="auto", num_samples=60)
    data = ImageDataModule(dataset="digits", batch_size=32)  # 180 validation images: 6 batches, the last short
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    scores = trainer.validate(model, datamodule=data)[0]
    model.eval()
    with torch.no_grad():
        fake_features, fake_logits = judge.features_and_logits(model.sample(model.fixed_z))
        real_features = judge.features_and_logits(data.splits["val"][0])[0]
    assert scores["val/fid"] == pytest.approx(float(frechet_distance(real_features, fake_features)), rel=1e-4)
    assert scores["val/is"] == pytest.approx(float(inception_score(fake_logits.softmax(-1))), rel=1e-5)
    half = float(frechet_distance(real_features[:90], fake_features))
    assert scores["val/fid"] != pytest.approx(half, rel=1e-4)  # every batch counted, not the first ones


def test_without_a_judge_the_scores_are_not_computed_and_say_why() -> None:
    """Issue 29: ``judge none`` logs NaN for is / fid (a checkpoint monitor of val/fid still works) and the reason
    the CLI prints in their place, never a number."""
    gan, logged = tiny_gan(), {}
    gan.log = lambda name, value, **options: logged.__setitem__(name, value)
    gan._score("test")
    assert math.isnan(logged["test/fid"]) and math.isnan(logged["test/is"])
    assert gan.missing_figures == {f"test/{n}": "model.judge none: no judge scores the samples" for n in ("is", "fid")}
    assert gan.min_evaluation_rows == 1 and tiny_gan(judge="digits").min_evaluation_rows == 2


def test_vae_training_lowers_its_loss() -> None:
    from kexue.datamodules.images import ImageDataModule
    from kexue.lightning_modules.vae import VAE

    torch.manual_seed(0)
    model = VAE(encoder=component("ConvEncoder", latent_dim=4, data_shape=[1, 8, 8], width=8),
                decoder=component("DCGANGenerator", latent_dim=4, data_shape=[1, 8, 8], width=8, output="logits"),
                lr=1e-2, judge="none", num_samples=16)
    data = ImageDataModule(dataset="digits")
    data.setup("fit")
    x = data.splits["val"][0]  # (180, 1, 8, 8): images the training never sees

    def loss() -> float:
        torch.manual_seed(1)  # the same reparameterisation noise before and after
        with torch.no_grad():
            return float(sum(model.negative_elbo(x)))

    before = loss()
    _fit(model, 22)  # one epoch of digits
    after = loss()
    assert after < 0.8 * before, (before, after)
    assert model.sample(model.fixed_z).shape == (16, 1, 8, 8)


def test_vae_networks_must_share_the_latent_size() -> None:
    from kexue.lightning_modules.vae import VAE

    with pytest.raises(UsageError, match=r"model.encoder's latent_dim \(4\) and model.decoder's \(64\)"):
        VAE(encoder=component("ConvEncoder", latent_dim=4), judge="none")


@pytest.mark.parametrize("kwargs, message", [
    (dict(reg_weight=-1.0), "model.reg_weight must be >= 0"),
    (dict(generator_steps=0), "model.generator_steps must be >= 1"),
    (dict(num_samples=1), "model.num_samples must be >= 2"),
    (dict(judge="inception"), "model.judge must be"),
    (dict(generator=component("DCGANDiscriminator", data_shape=[1, 8, 8])), "int latent_dim attribute"),
])
def test_bad_arguments_name_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        tiny_gan(**kwargs)


def _printed_scores(stdout: str) -> dict[str, float]:
    """``{"val/fid": ..., "val/is": ...}`` from the ``name value`` lines `kexue validate` prints last."""
    return {line.split()[0]: float(line.split()[1]) for line in stdout.splitlines()
            if line.startswith(("val/fid ", "val/is "))}


def test_scores_under_two_ddp_processes_are_the_one_process_scores(tmp_path) -> None:
    """The same untrained GAN (seed 42) validated by 1 and by 2 CPU processes: 179 digits (odd, so Lightning's
    default sampler would repeat one: 385.98 instead of 386.70, checked by hand) and 51 samples (odd, split 26 / 25).
    """
    from .conftest import kexue

    args = ["validate", "gan", "--untrained", "true", "--data.dataset", "digits", "--model.num_samples", "51",
            "--logger", "none", "--trainer.enable_progress_bar", "false"]
    env = {"KEXUE_CACHE": str(tmp_path / "cache")}  # the same freshly trained judge for both runs
    one = kexue(*args, env=env, timeout=600)
    two = kexue(*args, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", env=env,
                timeout=600)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    single, double = _printed_scores(one.stdout), _printed_scores(two.stdout)
    assert single.keys() == double.keys() == {"val/fid", "val/is"}
    assert double == pytest.approx(single, abs=2e-4)  # printed to 4 decimals
