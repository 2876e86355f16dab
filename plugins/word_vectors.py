"""What the three word-vector tasks (``word2vec``, ``svd_vectors``, ``simpler_glove``) link from the built
DataModule into the model: the vocabulary and the language of the probe words (SVD分解(三),
https://kexue.fm/archives/4208). Standard library only, as every plugin module."""

VOCABULARY_LINKS: tuple[tuple[str, str], ...] = (
    ("data.vocab_size", "model.vocab_size"),
    ("data.words", "model.words"),
    ("data.language", "model.language"),
)
