"""Task ``reading_comprehension``: UniLM seq2seq on one BERT (passage + question -> answer), beam search restricted
to passage substrings, the exposure-bias switch (kexue.fm/archives/7115, /6933, /7259); templated DuIE questions by
default, WebQA / SogouQA files."""

from kexue.registry import Task

TASK = Task(
    name="reading_comprehension",
    summary="UniLM seq2seq QA on one BERT (templated DuIE questions, `kexue fetch duie`; WebQA/SogouQA); test EM/F1",
    module="kexue.lightning_modules.reading_comprehension:ReadingComprehension",
    datamodule="kexue.datamodules.reading_comprehension:ReadingComprehensionDataModule",
    config="kexue.conf:reading_comprehension.yaml",
    post="https://kexue.fm/archives/7115",
    metric="test/f1",
    links=(("data.max_length", "model.bert.init_args.max_length"),
           ("data.max_answer_length", "model.max_answer_length")),
    data_links=(("data.vocab_size", "model.bert.init_args.vocab_size"), ("data.vocabulary_list", "model.vocabulary")),
)
