"""Tasks ``gan`` and ``gan_vae``: a DCGAN with the variational-inference regulariser of kexue.fm/archives/5716
(``model.reg_weight`` λ, 0 = plain GAN) and its VAE baseline, both scored by the digit judge (IS / FID-like)."""

from kexue.registry import Task

_COMMON = dict(
    datamodule="kexue.datamodules.images:ImageDataModule",
    config="kexue.conf:gan.yaml",
    post="https://kexue.fm/archives/5716",
    metric="test/fid",
    data_links=(("data.data_shape", "model.data_shape"),),
)
TASK = Task(
    name="gan",
    summary="GAN as variational inference: DCGAN on MNIST-5k with the post's generator regulariser λ‖G(z)-G_old(z)‖²",
    module="kexue.lightning_modules.gan:GAN",
    **_COMMON,
)
VAE_TASK = Task(
    name="gan_vae",
    summary="The VAE baseline of task gan (same decoder, same judge scores): kexue.fm/archives/5716",
    module="kexue.lightning_modules.gan:VAE",
    **_COMMON,
)
