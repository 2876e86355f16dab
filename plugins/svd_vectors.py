"""Task ``svd_vectors``: PPMI matrix + truncated SVD word vectors ("Word2Vec is just an SVD"), no training loop."""

from kexue.plugins.word_vectors import VOCABULARY_LINKS
from kexue.registry import Task

TASK = Task(
    name="svd_vectors",
    summary="PPMI + truncated SVD word vectors (gensim enwiki+lee sample), wordsim353/simlex/analogy",
    module="kexue.lightning_modules.svd_vectors:SVDVectors",
    datamodule="kexue.datamodules.word_vectors:CooccurrenceDataModule",
    config="kexue.conf:svd_vectors.yaml",
    post="https://kexue.fm/archives/4208",
    metric="test/wordsim353",
    data_links=VOCABULARY_LINKS,
)
# The epoch's end factorises the whole matrix (max_epochs 1; data.batch_size null = the matrix as one batch).
