"""UniLM seq2seq on one BERT: packing ``source + target`` with segment ids, the target-side LM labels, the
exposure-bias remedy of random replacement, and a cache-less beam search whose answers may be restricted to
substrings of a passage.

Posts: 从语言模型到Seq2Seq：Transformer如戏，全靠Mask (https://kexue.fm/archives/6933) and 万能的seq2seq
(https://kexue.fm/archives/7115): ``[CLS] source [SEP] target [SEP]``, segment 0 on the source and 1 on the target,
the mask :func:`kexue.nn.masks.seq2seq_mask`, and a cross-entropy only where the next token is a target token; the
reading-comprehension example decodes answers copied from the passage.
Seq2Seq中Exposure Bias现象的浅析与对策 (https://kexue.fm/archives/7259): replace teacher-forced target inputs by
random tokens with some probability, the labels unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kexue.errors import UsageError
from kexue.text.vocabulary import char_vocabulary

IGNORE = -100
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[unused1]")  # a vocabulary built here starts with these


@dataclass(frozen=True)
class CharVocab:
    """One token per character, BERT-style specials (as :class:`kexue.models.BertCharEncoder` tokenises).

    Attributes:
        pieces: the vocabulary in id order (a BERT folder's ``vocab.txt``, or :func:`build_char_vocab`'s list).
    """

    pieces: tuple[str, ...]

    def __post_init__(self) -> None:
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in self.index]
        if missing:
            raise ValueError(f"a seq2seq vocabulary needs {', '.join(missing)}")

    @property
    def index(self) -> dict[str, int]:
        """``{piece: id}`` (first occurrence wins)."""
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {}
            for i, p in enumerate(self.pieces):
                cached.setdefault(p, i)
            object.__setattr__(self, "_index", cached)
        return cached

    @classmethod
    def from_folder(cls, folder: str | Path) -> CharVocab:
        """The ``vocab.txt`` of a BERT folder (missing: a UsageError naming it)."""
        path = Path(folder) / "vocab.txt"
        if not path.is_file():
            raise UsageError("no vocab.txt: a BERT folder's tokenizer needs one", path)
        return cls(tuple(path.read_text(encoding="utf-8").splitlines()))

    pad = property(lambda self: self.index["[PAD]"], doc="``[PAD]`` id")
    unk = property(lambda self: self.index["[UNK]"], doc="``[UNK]`` id")
    cls = property(lambda self: self.index["[CLS]"], doc="``[CLS]`` id")
    sep = property(lambda self: self.index["[SEP]"], doc="``[SEP]`` id")

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        """One id per character: the character, else its lower case, else ``[unused1]`` for white space, else
        ``[UNK]``; ``len(text)`` ids."""
        index, unk = self.index, self.unk
        space = index.get("[unused1]", unk)
        return [index.get(c, index.get(c.lower(), space if c.isspace() else unk)) for c in text]


def build_char_vocab(texts: Sequence[str], min_count: int = 1) -> list[str]:
    """:data:`BERT_SPECIALS`, then the non-space characters of ``texts`` seen ``min_count`` times or more, most
    frequent first (ties by character): the vocabulary of a BERT trained here from scratch
    (:func:`kexue.text.vocabulary.char_vocabulary` with BERT's specials)."""
    return char_vocabulary(texts, min_count, specials=BERT_SPECIALS, keep_space=False)


def unilm_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad_id: int = 0
                ) -> dict[str, Tensor]:
    """Pack ``source + target`` id lists (each already holding its ``[CLS]``/``[SEP]``s) right-padded.

    Returns ``ids``, ``segments`` (0 source, 1 target), ``padding`` (True on real tokens) and ``labels``, all
    ``(B, T)``: ``labels[b, t] = ids[b, t + 1]`` where position ``t + 1`` is a target token, else ``-100``: the
    position before each target token predicts it (the last source ``[SEP]`` predicts the first target token), so
    the loss is the target side's language-model loss (post 6933).
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources for {len(targets)} targets")
    T = max(1, *(len(s) + len(t) for s, t in zip(sources, targets)))
    B = len(sources)
    ids = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    segments = torch.zeros(B, T, dtype=torch.long)  # (B, T)
    padding = torch.zeros(B, T, dtype=torch.bool)  # (B, T)
    for b, (s, t) in enumerate(zip(sources, targets)):
        n = len(s) + len(t)
        ids[b, :n] = torch.tensor([*s, *t], dtype=torch.long)
        segments[b, len(s) : n] = 1
        padding[b, :n] = True
    labels = torch.full((B, T), IGNORE, dtype=torch.long)  # (B, T)
    nxt = segments[:, 1:].bool() & padding[:, 1:]  # (B, T-1): the next token is a target token
    labels[:, :-1] = ids[:, 1:].masked_fill(~nxt, IGNORE)
    return {"ids": ids, "segments": segments, "padding": padding, "labels": labels}


def unilm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` ``(B, T, V)`` on the ``labels`` ``(B, T)`` that are not ``-100``."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


def random_replace(ids: Tensor, where: Tensor, prob: float, low: int, high: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """Post 7259's remedy for exposure bias: each position of ``ids`` ``(B, T)`` where ``where`` ``(B, T)`` is true
    (the teacher-forced target inputs) becomes a uniform random id in ``[low, high)`` with probability ``prob``.
    Returns a new tensor; build the labels from the original ids, so they stay the true next tokens."""
    if not 0 <= prob <= 1:
        raise ValueError(f"replace probability must be in [0, 1], got {prob}")
    if high <= low:
        raise ValueError(f"empty id range [{low}, {high})")
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device) < prob  # (B, T)
    noise = torch.randint(low, high, ids.shape, generator=generator, device="cpu").to(ids.device)  # (B, T)
    return torch.where(draw & where.bool(), noise, ids)


def copy_continuations(passage: Sequence[int], prefix: Sequence[int]) -> set[int]:
    """The tokens ``x`` such that ``prefix + [x]`` occurs in ``passage`` (ids): the post's constraint that an
    answer is a passage substring, one step at a time."""
    n, k = len(passage), len(prefix)
    prefix = list(prefix)
    return {passage[i + k] for i in range(n - k) if list(passage[i : i + k]) == prefix}


StepFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # ids, segments, padding (N, T) -> next-token log-probs (N, V)


def unilm_step(bert: torch.nn.Module) -> StepFn:
    """A :data:`StepFn` of a :class:`kexue.models.Bert` with an MLM head under the UniLM mask: the log-probabilities
    ``(N, V)`` of the token after the last real one of each right-padded row. No KV cache: the whole sequence is
    run each step (the source sees no target, so a cache would be exact; its absence only costs time)."""
    from kexue.nn.masks import seq2seq_mask

    def step(ids: Tensor, segments: Tensor, padding: Tensor) -> Tensor:
        hidden = bert(ids, token_type_ids=segments, padding=padding, mask=seq2seq_mask(segments))  # (N, T, D)
        last = padding.sum(1) - 1  # (N,)
        h = hidden[torch.arange(len(ids), device=ids.device), last][:, None]  # (N, 1, D)
        return bert.mlm_logits(h)[:, 0].float().log_softmax(-1)  # (N, V)

    return step


@torch.no_grad()
def unilm_beam_search(step: StepFn, sources: Sequence[Sequence[int]], sep_id: int, beam_size: int = 3,
                      max_length: int = 16, passages: Sequence[Sequence[int]] | None = None,
                      banned: Sequence[int] = (), pad_id: int = 0, device: torch.device | str = "cpu"
                      ) -> list[tuple[list[int], float]]:
    """Beam search of a target after each source (posts 7115, 6933), batched over sources and beams.

    Scores are summed log-probabilities; each step keeps the ``beam_size`` best continuations of the alive
    beams, those ending in ``sep_id`` leave as finished; a source is done when its best finished score is at least
    every alive score (they only fall), so a beam as wide as the search space is exhaustive search. With
    ``passages`` (ids, one per source) a continuation is allowed only if the target stays a substring of the
    passage, and ``[SEP]`` only after one token at least (post 7115's reading comprehension); else every id but
    ``banned`` is. At ``max_length`` tokens only ``[SEP]`` is allowed.

    Args:
        step: next-token log-probabilities of packed rows (:func:`unilm_step`).
        sources: id lists ``[CLS] ... [SEP]``.

    Returns:
        per source, ``(target ids without the final [SEP], score)``; ``([], -inf)`` when nothing was allowed.
    """
    if beam_size < 1 or max_length < 1:
        raise ValueError(f"beam_size and max_length must be >= 1, got {beam_size}, {max_length}")
    alive: list[list[tuple[list[int], float]]] = [[([], 0.0)] for _ in sources]
    best: list[tuple[list[int], float]] = [([], float("-inf")) for _ in sources]
    banned_t = torch.tensor(sorted(set(banned) - {sep_id}), dtype=torch.long)
    for _ in range(max_length + 1):
        rows = [(i, prefix, score) for i, beams in enumerate(alive) for prefix, score in beams]
        if not rows:
            break
        packed = unilm_batch([sources[i] for i, _, _ in rows], [p for _, p, _ in rows], pad_id)
        logp = step(*(packed[k].to(device) for k in ("ids", "segments", "padding"))).cpu()  # (N, V)
        candidates: list[list[tuple[float, list[int], bool]]] = [[] for _ in sources]
        for r, (i, prefix, score) in enumerate(rows):
            row = logp[r]
            if len(prefix) >= max_length:
                allowed = torch.tensor([sep_id])
            elif passages is not None:
                nxt = copy_continuations(passages[i], prefix) - {sep_id}
                allowed = torch.tensor(sorted(nxt | ({sep_id} if prefix else set())), dtype=torch.long)
            else:
                mask = torch.ones_like(row, dtype=torch.bool)
                mask[banned_t] = False
                mask[sep_id] = bool(prefix)
                allowed = mask.nonzero()[:, 0]
            if not len(allowed):
                continue
            top = row[allowed].topk(min(beam_size, len(allowed)))
            for value, j in zip(top.values.tolist(), top.indices.tolist()):
                token = int(allowed[j])
                candidates[i].append((score + value, [*prefix, token], token == sep_id))
        for i, cands in enumerate(candidates):
            cands.sort(key=lambda c: -c[0])
            kept = cands[:beam_size]
            for s, seq, done in kept:
                if done and s > best[i][1]:
                    best[i] = (seq[:-1], s)
            alive[i] = [(seq, s) for s, seq, done in kept if not done and s > best[i][1]]
    return best


def copied_text(passage: str, passage_ids: Sequence[int], answer_ids: Sequence[int]) -> str:
    """The characters of ``passage`` at the first occurrence of ``answer_ids`` in ``passage_ids`` (one id per
    character), so that characters outside the vocabulary come back as written; ``""`` when absent."""
    k = len(answer_ids)
    for i in range(len(passage_ids) - k + 1):
        if list(passage_ids[i : i + k]) == list(answer_ids):
            return passage[i : i + k]
    return ""


__all__ = ["BERT_SPECIALS", "CharVocab", "build_char_vocab", "copied_text", "copy_continuations", "random_replace",
           "unilm_batch", "unilm_beam_search", "unilm_loss", "unilm_step"]
