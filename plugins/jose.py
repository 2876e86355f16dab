"""Task ``jose``: JoSE, words and paragraphs on the unit sphere, max-margin loss, Riemannian SGD."""

from kexue.plugins.word_vectors import VOCABULARY_LINKS
from kexue.registry import Task

TASK = Task(
    name="jose",
    summary="JoSE spherical word + paragraph vectors, hinge loss, Riemannian SGD (gensim enwiki+lee), wordsim/simlex",
    module="kexue.lightning_modules.jose:JoSE",
    datamodule="kexue.datamodules.skipgram:SkipGramDataModule",
    config="kexue.conf:jose.yaml",
    post="https://kexue.fm/archives/7063",
    metric="test/wordsim353",
    data_links=(
        *VOCABULARY_LINKS,
        ("data.counts", "model.counts"),
        ("data.steps_per_epoch", "model.steps_per_epoch"),
        ("data.num_paragraphs", "model.num_paragraphs"),
    ),
)
# `kexue run jose` writes vectors.txt (the word vectors u) and paragraph_vectors.txt in the run directory;
# the path of vectors.txt is the last line. conf/jose.yaml sets data.paragraphs true (the pairs' corpus lines).
