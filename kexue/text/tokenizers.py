"""Tokenisers of the text family as components of its DataModules: ``--data.tokenizer CLASS`` swaps them, the
DataModule's collate applies them in the DataLoader's workers, and the model gets the sizes it needs
(:attr:`vocab_size` -> the encoder's ``num_embeddings``, :attr:`num_features` -> its ``num_features``) by a link.

Two kinds, by what the task scores:

- :class:`TextTokenizer`: texts -> ids ``(B, T)`` (sentiment, multilabel): :class:`HashedNgrams` (the hashed
  character n-grams of SVD分解(三), https://kexue.fm/archives/4233) or :class:`WordPiece` (a BERT folder's
  ``vocab.txt``, 当Bert遇上Keras, https://kexue.fm/archives/6736).
- :class:`CharTokenizer`: texts -> ``G`` ids per character ``(B, T, G)``, ``T`` the longest text in characters, so
  tags and pointers stay on characters (cws, ner, relation_extraction): :class:`HashedChars` (a character and its
  bigrams, https://kexue.fm/archives/5542) or :class:`BertChars` (one BERT vocabulary id per character, as
  用bert4keras做三元组抽取, https://kexue.fm/archives/7161).

Id 0 is padding for every tokeniser (a BERT vocabulary must have ``[PAD]`` first, as every released one does), so
an encoder finds the real tokens as ``ids > 0`` whichever tokeniser made them. A tokeniser is a plain picklable
object (workers receive a copy) whose constructor arguments are all a checkpoint needs to rebuild it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from kexue.errors import UsageError
from kexue.text import char_features, char_ngrams, hash_tokens, pad_sequences


class TextTokenizer:
    """Texts -> ids ``(B, T)``, right-padded with 0; ids lie in ``[0, vocab_size)``."""

    vocab_size: int
    num_features: int = 1

    def __call__(self, texts: Sequence[str]) -> Tensor:
        raise NotImplementedError


class CharTokenizer:
    """Texts -> ``num_features`` ids per character ``(B, T, G)``, ``T = max(1, longest text)``, 0 at padding; a
    character's first id is never 0 (the encoder's mask is ``ids[..., 0] > 0``)."""

    vocab_size: int
    num_features: int

    def rows(self, text: str) -> list[list[int]]:
        """The ``len(text)`` rows of ``G`` ids of one text."""
        raise NotImplementedError

    def __call__(self, texts: Sequence[str]) -> Tensor:
        ids = torch.zeros(len(texts), max(1, *map(len, texts)), self.num_features, dtype=torch.long)  # (B, T, G)
        for i, text in enumerate(texts):
            if text:
                ids[i, : len(text)] = torch.as_tensor(self.rows(text), dtype=torch.long)  # (L, G)
        return ids


class HashedNgrams(TextTokenizer):
    """A text's character n-grams of every order in ``ngrams``, each hashed (CRC-32) into ``[1, num_buckets)``:
    stateless, nothing to build or ship but these three numbers (kexue.fm/archives/4233).

    Args:
        ngrams: n-gram orders, e.g. ``[1, 2, 3]``.
        num_buckets: hash buckets, the encoder's embedding rows (id 0 is padding).
        max_length: characters of a text kept before n-grams are taken.
    """

    def __init__(self, ngrams: list[int] = [1, 2, 3], num_buckets: int = 2**18,  # noqa: B006
                 max_length: int = 256) -> None:
        if not ngrams or min(ngrams) < 1:
            raise UsageError(f"data.tokenizer.ngrams must be one or more orders >= 1, got {ngrams}")
        if num_buckets < 2:
            raise UsageError(f"data.tokenizer.num_buckets must be >= 2, got {num_buckets}")
        if max_length < 1:
            raise UsageError(f"data.tokenizer.max_length must be >= 1, got {max_length}")
        self.ngrams, self.num_buckets, self.max_length = list(ngrams), num_buckets, max_length
        self.vocab_size = num_buckets

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """``(B, T)`` hashed n-gram ids, ``T >= 1`` (a blank text is one padding id)."""
        return pad_sequences([hash_tokens(char_ngrams(t, self.ngrams, self.max_length), self.num_buckets)
                              for t in texts])  # (B, T)


class WordPiece(TextTokenizer):
    """A BERT folder's WordPiece tokenizer (its ``vocab.txt``; lower case unless its ``tokenizer_config.json`` says
    otherwise): ``[CLS] pieces [SEP]``, cut to ``max_length`` tokens, padded with ``[PAD]`` = 0.

    Args:
        checkpoint: the Hugging Face BERT folder whose encoder the task fine-tunes (``--config bert`` names the
            same folder for both; :class:`kexue.models.BertTextEncoder` checks the vocabulary fits).
        max_length: tokens per text including ``[CLS]`` and ``[SEP]`` (>= 3).
    """

    def __init__(self, checkpoint: str, max_length: int = 128) -> None:
        from kexue.models.tokenizers import bert_tokenizer  # tokenizers, loaded only for a BERT

        if max_length < 3:
            raise UsageError(f"data.tokenizer.max_length must be >= 3 ([CLS], a piece, [SEP]), got {max_length}")
        self.checkpoint, self.max_length = checkpoint, max_length
        self.tokenizer = bert_tokenizer(checkpoint)
        self.tokenizer.enable_truncation(max_length)
        self.vocab = self.tokenizer.get_vocab(with_added_tokens=False)
        self.vocab_size = len(self.vocab)
        if self.vocab.get("[PAD]") != 0:
            raise UsageError(f"{checkpoint}/vocab.txt: [PAD] must be its first piece (id 0), the padding id of "
                             "every kexue tokenizer")

    def __call__(self, texts: Sequence[str]) -> Tensor:
        return torch.tensor([row.ids for row in self.tokenizer.encode_batch(list(texts))],
                            dtype=torch.long).reshape(len(texts), -1)  # (B, T), T >= 2


class HashedChars(CharTokenizer):
    """Each character's hashed id, and with ``bigrams`` those of the bigrams ending and starting at it (``G = 3``,
    else 1): :func:`kexue.text.char_features` (kexue.fm/archives/5542); with ``ending_bigrams`` false only the
    bigram it starts (``G = 2``, sentence_similarity's features, kexue.fm/archives/5743).

    Args:
        num_buckets: hash buckets, the encoder's embedding rows (id 0 is padding).
        bigrams: add bigram ids per character.
        ending_bigrams: with ``bigrams``, also the bigram that ends at the character.
    """

    def __init__(self, num_buckets: int = 2**16, bigrams: bool = True, ending_bigrams: bool = True) -> None:
        if num_buckets < 2:
            raise UsageError(f"data.tokenizer.num_buckets must be >= 2, got {num_buckets}")
        self.num_buckets, self.bigrams, self.ending_bigrams = num_buckets, bigrams, ending_bigrams
        self.vocab_size = num_buckets
        self.num_features = 1 + (2 if ending_bigrams else 1) * bigrams

    def rows(self, text: str) -> list[list[int]]:
        rows = char_features(text, self.num_buckets, self.bigrams)  # (L, 1 or 3): own, ending, starting
        return rows if self.ending_bigrams or not self.bigrams else [[own, starting] for own, _, starting in rows]


class BertChars(CharTokenizer):
    """One id per character from a BERT folder's ``vocab.txt`` (``G = 1``): the character, else its lower case,
    else ``[unused1]`` for white space (as bert4keras does), else ``[UNK]``; WordPiece would merge characters and
    move the tags. :class:`kexue.models.BertCharEncoder` adds ``[CLS]`` and ``[SEP]`` around them.

    Args:
        checkpoint: the BERT folder (the encoder's).
    """

    num_features = 1

    def __init__(self, checkpoint: str) -> None:
        from kexue.models.tokenizers import bert_tokenizer

        self.checkpoint = checkpoint
        self.vocab = bert_tokenizer(checkpoint).get_vocab(with_added_tokens=False)
        self.vocab_size = len(self.vocab)
        if self.vocab.get("[PAD]") != 0 or "[UNK]" not in self.vocab:
            raise UsageError(f"{checkpoint}/vocab.txt needs [PAD] first (id 0, the padding id) and an [UNK] piece")

    def rows(self, text: str) -> list[list[int]]:
        vocab = self.vocab
        unk = vocab["[UNK]"]
        space = vocab.get("[unused1]", unk)
        return [[vocab.get(c, vocab.get(c.lower(), space if c.isspace() else unk))] for c in text]


__all__ = ["BertChars", "CharTokenizer", "HashedChars", "HashedNgrams", "TextTokenizer", "WordPiece"]
