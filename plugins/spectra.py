"""Task ``spectra``: 1-D sequence (spectrum) classification with the residual Conv1D classifier."""

from kexue.registry import Task

TASK = Task(
    name="spectra",
    summary="Spectra / 1-D sequence classification (chemotools coffee, UCR sets, LAMOST files), residual Conv1D",
    module="kexue.lightning_modules.spectra_classifier:SpectraClassifier",
    datamodule="kexue.datamodules.spectra:SpectraDataModule",
    config="kexue.conf:spectra.yaml",
    post="https://kexue.fm/archives/5505",
    metric="test/acc",
    data_links=(("data.labels", "model.labels"), ("data.class_counts", "model.class_counts")),
)
