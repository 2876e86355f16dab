"""The one character vocabulary of every network trained here from scratch on characters: special tokens first,
then the characters of the training text, most frequent first (ties by character), so ids are stable for a given
text.

Task ``language_model`` uses :data:`CHAR_SPECIALS` (``<pad> <bos> <eos> <unk>``); the character BERTs of
``reading_comprehension`` and ``cond_lm`` use BERT's (``[PAD] [UNK] [CLS] [SEP] [unused1]``, through
:class:`kexue.models.tokenizers.BertCharTokenizer`) and leave whitespace out.
Posts: 从语言模型到Seq2Seq (https://kexue.fm/archives/6933); 基于Conditional Layer Normalization的条件文本生成
(https://kexue.fm/archives/7124).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from kexue.errors import UsageError

CHAR_SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


def char_vocabulary(texts: Iterable[str], min_count: int = 1, specials: Sequence[str] = CHAR_SPECIALS,
                    keep_space: bool = True) -> list[str]:
    """``specials``, then the characters of ``texts`` seen at least ``min_count`` times (whitespace only with
    ``keep_space``; a character equal to a special is not repeated), most frequent first, ties by character."""
    counts = Counter(c for text in texts for c in text if keep_space or not c.isspace())
    chars = sorted((c for c, n in counts.items() if n >= min_count and c not in specials),
                   key=lambda c: (-counts[c], c))
    return [*specials, *chars]


def check_pieces(pieces: list | None, option: str) -> list[str] | None:
    """``pieces`` (a vocabulary in id order) as a list of strings, or ``None``; a UsageError naming ``option``
    otherwise.

    Vocabulary arguments are annotated ``list | None``, not ``list[str] | None``, and checked here: jsonargparse
    (4.53) deep-copies the argument's whole previous value once per element of a typed list while it validates,
    dumps and instantiates a config, which is quadratic in the vocabulary — 33 s of a tiny cond_lm's ``predict``
    from a checkpoint holding 5,000 characters, twice over (model and tokenizer). Posts: https://kexue.fm/archives/6933.
    """
    if pieces is None:
        return None
    if not isinstance(pieces, (list, tuple)) or not all(isinstance(p, str) for p in pieces):
        raise UsageError(f"{option} must be a list of strings (the pieces in id order)")
    return list(pieces)


__all__ = ["CHAR_SPECIALS", "char_vocabulary", "check_pieces"]
