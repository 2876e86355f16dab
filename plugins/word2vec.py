"""Task ``word2vec``: skip-gram (or CBOW) with negative sampling on sparse embeddings, exported as word2vec text."""

from kexue.plugins.word_vectors import VOCABULARY_LINKS
from kexue.registry import Task

TASK = Task(
    name="word2vec",
    summary="word2vec skip-gram/CBOW + negative sampling (gensim enwiki+lee sample), wordsim353/simlex/analogy",
    module="kexue.lightning_modules.word2vec:Word2Vec",
    datamodule="kexue.datamodules.skipgram:SkipGramDataModule",
    config="kexue.conf:word2vec.yaml",
    post="https://kexue.fm/archives/5617",
    metric="test/wordsim353",
    links=(("model.mode", "data.mode"),),
    data_links=(*VOCABULARY_LINKS, ("data.counts", "model.counts"), ("data.steps_per_epoch", "model.steps_per_epoch")),
)
# `kexue run word2vec` writes vectors.txt (word2vec text format) in the run directory and prints its path last.
