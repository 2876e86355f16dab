"""Task ``text_similarity``: WMD, WRD and mean-vector cosine against human scores (Lee corpus), no training."""

from kexue.registry import Task

TASK = Task(
    name="text_similarity",
    summary="Unsupervised text similarity (Lee corpus, human scores): -WMD, 1-WRD, cosine of mean vectors",
    module="kexue.lightning_modules.text_similarity:TextSimilarity",
    datamodule="kexue.datamodules.text_similarity:TextPairDataModule",
    config="kexue.conf:text_similarity.yaml",
    post="https://kexue.fm/archives/7388",
    metric="test/wrd_pearson",
)
