"""Task ``relation_extraction``: DuIE triples by subject pointers, a Conditional-LayerNorm subject condition and
per-predicate object pointers (kexue.fm/archives/7161); DGCNN encoder or a BERT folder."""

from kexue.registry import Task

TASK = Task(
    name="relation_extraction",
    summary="(subject, predicate, object) triples of DuIE sentences (`kexue fetch duie`), DGCNN or BERT + pointers",
    module="kexue.lightning_modules.relation_extraction:RelationExtractor",
    datamodule="kexue.datamodules.relation_extraction:RelationExtractionDataModule",
    config="kexue.conf:relation_extraction.yaml",
    post="https://kexue.fm/archives/7161",
    metric="test/f1",
    data_links=(("data.predicate_list", "model.predicates"),
                ("data.vocab_size", "model.encoder.init_args.num_embeddings"),
                ("data.num_features", "model.encoder.init_args.num_features")),
)
