"""Task ``vq_vae``: VQ-VAE, images to a grid of discrete codes and back, then a Transformer prior over the codes."""

from kexue.registry import Task

TASK = Task(
    name="vq_vae",
    summary="VQ-VAE (codebook / EMA, dead-code restarts) on digits or MNIST-5k + Transformer prior over the code grid",
    module="kexue.lightning_modules.vq_vae:VQVAE",
    datamodule="kexue.datamodules.images:ImageDataModule",
    config="kexue.conf:vq_vae.yaml",
    post="https://kexue.fm/archives/6760",
    metric="test/mse",
    # The quantiser's vectors are the autoencoder's bottleneck; the prior's vocabulary is the quantiser's codes.
    links=(("model.autoencoder.init_args.code_dim", "model.quantizer.init_args.code_dim"),
           ("model.quantizer.init_args.num_codes", "model.prior.init_args.num_codes")),
    data_links=(("data.data_shape", "model.autoencoder.init_args.data_shape"),),
)
# `kexue run vq_vae --model.quantizer null` trains the plain autoencoder with the same bottleneck (no prior);
# `--model.quantizer.ema true` the moving-average codebook. Reconstructions and prior samples: figures/ in the run dir.
