"""The one place where a network's sizes are checked against what the data and the tokenizer need: a vocabulary
whose ids do not all have an embedding row, examples longer than the network's learned positions.

Every network component (a Transformer built from a :class:`~kexue.nn.transformer.TransformerConfig`, a BERT or a
causal LM built from a folder, a GGUF file or an asset name) receives the sizes the data knows by a link and calls
these checks in its constructor, so a mismatch is one :class:`~kexue.errors.UsageError` line (exit 2) naming the
source of the weights and the option to change, whichever task it happens in.
Posts: 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292); 从语言模型到Seq2Seq (https://kexue.fm/archives/6933).
"""

from __future__ import annotations

from torch import nn

from kexue.errors import UsageError


def check_vocabulary(rows: int, vocab_size: int | None, source: str) -> None:
    """Raise :class:`UsageError` unless a tokenizer of ``vocab_size`` ids fits an embedding of ``rows`` rows.

    A tokenizer may use fewer ids than the network has rows (checkpoints pad their embedding to a multiple of 8 or
    64); it may not use more. ``vocab_size`` ``None`` or ``0``: nothing linked yet, nothing to check.

    Args:
        rows: the network's embedding rows (``num_embeddings``).
        vocab_size: the tokenizer's id count (linked from the DataModule).
        source: where the weights come from (a folder, a file, an asset, or ``"model.net"`` for a fresh network).
    """
    if vocab_size and vocab_size > rows:
        raise UsageError(f"the tokenizer has {vocab_size} ids but the network's embedding has {rows} rows "
                         f"({source}): the tokenizer is not this network's (build both from the same source)")


def check_positions(
    max_length: int | None, positions: int | None, source: str, option: str = "data.max_length"
) -> None:
    """Raise :class:`UsageError` when examples of ``max_length`` tokens do not fit ``positions`` learned positions.

    Args:
        max_length: the longest example in tokens (linked from the DataModule; ``None``/``0``: not linked).
        positions: the network's learned positions (``None``: unbounded, e.g. rotary positions).
        source: where the weights come from (see :func:`check_vocabulary`).
        option: the option that sets ``max_length``, named in the message.
    """
    if max_length and positions is not None and max_length > positions:
        raise UsageError(f"{option}={max_length} exceeds the {positions} positions of the network ({source}): "
                         f"lower {option}")


def input_limit(model: nn.Module | None) -> tuple[int, str] | None:
    """The fewest input positions any part of ``model`` takes, and where that limit comes from: the minimum of
    ``module.input_limit()`` over its modules (a Transformer with learned positions, a BERT folder's encoder, which
    reserves two for ``[CLS]`` and ``[SEP]``), ``None`` when nothing in it is bounded (rotary positions, a CNN)."""
    found = []
    for module in model.modules() if model is not None else ():
        limit = getattr(module, "input_limit", None)
        if callable(limit) and (value := limit()) is not None:
            found.append(value)
    return min(found, key=lambda value: value[0]) if found else None


def check_input_length(model: nn.Module | None, length: int | None, option: str, where: str) -> None:
    """Raise :class:`UsageError` when inputs of ``length`` tokens (characters for a character-level task) do not
    fit the learned positions of ``model`` (:func:`input_limit`): the DataModules call it with the longest input a
    split gives the model, before the first batch, so the mismatch is one line naming the option, not a crash in
    the middle of an epoch.

    Args:
        model: the model being trained or evaluated (``None``: nothing to check).
        length: the split's longest input as the model sees it (``None``/``0``: unknown).
        option: the option that caps it (``data.max_length``), named in the message.
        where: the split and its file, e.g. ``"the train split (the embedded corpus)"``.
    """
    limit = input_limit(model)
    if length and limit is not None and length > limit[0]:
        raise UsageError(f"{where}: inputs of {length} positions exceed the {limit[0]} positions of the network "
                         f"({limit[1]}): lower {option}")


__all__ = ["check_input_length", "check_positions", "check_vocabulary", "input_limit"]
