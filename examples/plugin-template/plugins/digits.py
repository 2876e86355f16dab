"""Registers task ``digits``. Must import nothing heavy: ``kexue tasks`` imports it to list it."""

from kexue.registry import Task

TASK = Task(
    name="digits",
    summary="Template plugin: MLP on scikit-learn's 8x8 handwritten digits",
    module="kexue_digits.lightning_modules.mlp:DigitsMLP",  # lazy: imported only to run the task
    datamodule="kexue_digits.datamodules.digits:DigitsDataModule",
    config="kexue_digits.conf:digits.yaml",  # package:resource, found wherever the plugin is installed
    post="https://kexue.fm",
    metric="test/acc",
)
