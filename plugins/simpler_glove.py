"""Task ``simpler_glove``: one set of vectors, no biases, fitted to the log PMI of the co-occurrence matrix."""

from kexue.plugins.word_vectors import VOCABULARY_LINKS
from kexue.registry import Task

TASK = Task(
    name="simpler_glove",
    summary="simpler GloVe: <v_i, v_j> ~ log P(i,j)/(P(i)P(j)), weighted (gensim enwiki+lee sample)",
    module="kexue.lightning_modules.simpler_glove:SimplerGloVe",
    datamodule="kexue.datamodules.word_vectors:CooccurrenceDataModule",
    config="kexue.conf:simpler_glove.yaml",
    post="https://kexue.fm/archives/4677",
    metric="test/wordsim353",
    data_links=VOCABULARY_LINKS,
)
# `kexue run simpler_glove` writes vectors.txt (word2vec text format) in the run directory, path on the last line.
