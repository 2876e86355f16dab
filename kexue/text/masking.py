"""Masked-language-model corruption: tokens grouped into words, and BERT's whole-word masking of one sequence
(80% mask token, 10% random piece, 10% kept).

Posts: 自己实现了一个bert4keras (https://kexue.fm/archives/6915) and the bert4keras pretraining scripts, whose
whole-word masking chooses a word or none of its pieces. Used by task ``pretrain``'s collate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def word_groups(offsets: Sequence[tuple[int, int]], pieces: Sequence[str], special: Sequence[int],
                spans: Sequence[tuple[int, int]] | None) -> list[int]:
    """Group id per token (``-1`` for ``[CLS]``/``[SEP]``): the tokens of one word share a group.

    Args:
        offsets: ``(T,)`` character spans of the tokens in the text.
        pieces: ``(T,)`` the tokens' pieces; a ``##`` piece always joins the token before it.
        special: ``(T,)`` 1 for special tokens.
        spans: character spans of the words (``None``: every WordPiece word is a word, i.e. each CJK character).
    """
    owner = np.full(max([0, *(e for _, e in offsets)]) + 1, -1)
    for w, (start, end) in enumerate(spans or ()):
        owner[start:end] = w
    groups, last_word, group = [], None, -1
    for (start, _), piece, is_special in zip(offsets, pieces, special):
        if is_special:
            groups.append(-1)
            last_word = None
            continue
        word = int(owner[start]) if spans is not None else -2
        if not piece.startswith("##") and (word < 0 or word != last_word):
            group += 1
        groups.append(group)
        last_word = word
    return groups


def whole_word_mask(ids: Sequence[int], groups: Sequence[int], rate: float, vocab_size: int,
                    rng: np.random.Generator, mask_id: int = 4, num_specials: int = 5) -> tuple[list[int], list[int]]:
    """BERT's corruption of one sequence: ``rate`` of the words (stochastically rounded) are chosen as wholes; each
    chosen token becomes ``mask_id`` (80%), a random non-special piece (10%: ids ``num_specials`` to
    ``vocab_size - 1``, the specials coming first as in BERT's vocabulary) or stays (10%).

    Returns ``(corrupted ids (T,), chosen (T,) 0/1)``; tokens of group ``-1`` are never chosen.
    """
    groups_arr = np.asarray(groups)
    num_words = int(groups_arr.max(initial=-1)) + 1
    picked = rng.choice(num_words, int(rate * num_words + rng.random()), replace=False)
    chosen = np.isin(groups_arr, picked) & (groups_arr >= 0)  # (T,)
    draw = rng.random(len(ids))
    randoms = rng.integers(num_specials, vocab_size, len(ids))
    out = np.where(draw < 0.8, mask_id, np.where(draw < 0.9, randoms, np.asarray(ids)))
    return np.where(chosen, out, ids).tolist(), chosen.astype(int).tolist()


__all__ = ["whole_word_mask", "word_groups"]
