"""Task ``sentence_similarity``: GRU sentence vectors trained with AM-Softmax over groups of sentences that
mean the same, evaluated by top-1/5/10 retrieval on held-out groups (https://kexue.fm/archives/5743)."""

from kexue.registry import Task

TASK = Task(
    name="sentence_similarity",
    summary="GRU sentence vectors, AM-Softmax|softmax over groups; retrieval top-1/5/10 (People's Daily paragraphs)",
    module="kexue.lightning_modules.sentence_similarity:SentenceSimilarity",
    datamodule="kexue.datamodules.sentence_similarity:SentenceSimilarityDataModule",
    config="kexue.conf:sentence_similarity.yaml",
    post="https://kexue.fm/archives/5743",
    metric="test/top1",
    data_links=(("data.num_train_groups", "model.num_classes"),
                ("data.vocab_size", "model.encoder.init_args.num_embeddings")),
)
