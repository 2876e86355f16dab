"""Tasks ``gan`` and ``gan_vae``: a DCGAN with the variational-inference regulariser of kexue.fm/archives/5716
(``model.reg_weight`` λ, 0 = plain GAN) and its VAE baseline, both scored by the digit judge (IS / FID-like). Two
tasks, not one with a preset: they are two LightningModule classes (two training procedures)."""

from kexue.registry import Task

_COMMON = dict(
    datamodule="kexue.datamodules.images:ImageDataModule",
    config="kexue.conf:gan.yaml",
    post="https://kexue.fm/archives/5716",
    metric="test/fid",
)
TASK = Task(
    name="gan",
    summary="GAN as variational inference: DCGAN on MNIST-5k with the post's generator regulariser λ‖G(z)-G_old(z)‖²",
    module="kexue.lightning_modules.gan:GAN",
    data_links=(("data.data_shape", "model.generator.init_args.data_shape"),
                ("data.data_shape", "model.discriminator.init_args.data_shape")),
    **_COMMON,
)
VAE_TASK = Task(
    name="gan_vae",
    summary="The VAE baseline of task gan (same decoder, same judge scores): kexue.fm/archives/5716",
    module="kexue.lightning_modules.vae:VAE",
    data_links=(("data.data_shape", "model.encoder.init_args.data_shape"),
                ("data.data_shape", "model.decoder.init_args.data_shape")),
    **_COMMON,
)
