"""Task ``flow``: invertible ResNet (i-ResNet) density estimation on 2-D points, digits or MNIST-5k."""

from kexue.registry import Task

TASK = Task(
    name="flow",
    summary="Invertible ResNet flow (spectral norm, fixed-point inverse, power-series log-det): moons, digits, MNIST",
    module="kexue.lightning_modules.flow:FlowModel",
    datamodule="kexue.datamodules.images:ImageDataModule",
    config="kexue.conf:flow.yaml",
    post="https://kexue.fm/archives/6482",
    metric="test/nll",
    data_links=(("data.data_shape", "model.net.init_args.shape"), ("data.levels", "model.levels")),
)
