"""The tokenisers of a causal language model, as components: a DataModule takes one as its ``tokenizer`` argument
(``--data.tokenizer kexue.models.PretrainedTokenizer --data.tokenizer.source smollm2``) and applies it in its collate;
the LightningModule receives the same object by a data link, to decode samples and predictions.

- :class:`CharTokenizer`: one id per character, its vocabulary built from the training split when not given
  (:func:`kexue.text.vocabulary.char_vocabulary`) and kept in the checkpoint through :meth:`LMTokenizer.config`.
- :class:`PretrainedTokenizer`: the tokenizer of a pretrained checkpoint — the byte-level BPE of a GGUF file or of
  the ``smollm2`` asset, a Hugging Face GPT-2 folder's BPE, a GPT2_ML folder's WordPiece — the same ``source`` the
  network factory :class:`kexue.models.PretrainedCausalLM` takes.

Posts: 从语言模型到Seq2Seq (https://kexue.fm/archives/6933); 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from kexue.errors import UsageError
from kexue.nn.components import FittedComponent
from kexue.text.vocabulary import CHAR_SPECIALS, char_vocabulary, check_pieces


class LMTokenizer(FittedComponent):
    """A ``tokenizers.Tokenizer`` plus the ids a language model needs: ``pad_id``, ``bos_id`` and ``eos_id``
    (``None``: generation stops at ``max_new_tokens`` only), and whether a text gets them, ``add_bos`` /
    ``add_eos``: the checkpoint's own flags (a GGUF's ``tokenizer.ggml.add_bos_token``, a GPT-2 folder's
    ``tokenizer_config.json``), so that a prompt is the ids the checkpoint's own tokenizer gives.

    ``encode(text) -> list[int]`` adds no special tokens; :meth:`frame` adds them as the flags say;
    ``decode(ids) -> str`` drops every special token. A component subclass is a
    :class:`~kexue.nn.components.FittedComponent`: whether it still has to learn from the training texts
    (:attr:`fitted`, :meth:`fit`) and how to rebuild it (:meth:`config`), which is what a checkpoint keeps.
    """

    def __init__(self, tokenizer: Tokenizer, pad_id: int, bos_id: int | None, eos_id: int | None,
                 add_bos: bool = True, add_eos: bool = True) -> None:
        self.tokenizer, self.pad_id, self.bos_id, self.eos_id = tokenizer, pad_id, bos_id, eos_id
        self.add_bos, self.add_eos = add_bos and bos_id is not None, add_eos and eos_id is not None

    def frame(self, ids: Sequence[int], end: bool = True) -> list[int]:
        """``ids`` with the BOS before them when ``add_bos``, and (``end``) the EOS after them when ``add_eos``;
        a prompt to continue is framed with ``end=False``."""
        return [self.bos_id] * self.add_bos + list(ids) + [self.eos_id] * (self.add_eos and end)

    @property
    def vocab_size(self) -> int:
        """Token ids the network must embed."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class CharTokenizer(LMTokenizer):
    """One id per character of ``vocabulary`` (:func:`char_vocabulary`'s order: ``<pad> <bos> <eos> <unk>``, then
    the characters); unseen characters -> ``<unk>``.

    Args:
        vocabulary: the characters in id order; ``None``: built by :meth:`fit` from the training split.
        min_count: characters seen fewer times in training become ``<unk>`` (used by :meth:`fit`).
    """

    def __init__(self, vocabulary: list | None = None, min_count: int = 2) -> None:  # list: see check_pieces
        vocabulary = check_pieces(vocabulary, "data.tokenizer.vocabulary")
        if min_count < 1:
            raise UsageError(f"data.tokenizer.min_count must be >= 1, got {min_count}")
        self.vocabulary, self.min_count = None, min_count
        if vocabulary is not None:
            self._build(list(vocabulary))

    def _build(self, vocabulary: list[str]) -> None:
        if vocabulary[: len(CHAR_SPECIALS)] != list(CHAR_SPECIALS) or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"a character vocabulary starts with {list(CHAR_SPECIALS)} and has no repeats")
        tokenizer = Tokenizer(models.WordLevel({c: i for i, c in enumerate(vocabulary)}, unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")  # every character is a token
        tokenizer.decoder = decoders.Fuse()  # and joins back without spaces
        tokenizer.add_special_tokens(list(CHAR_SPECIALS))
        super().__init__(tokenizer, pad_id=0, bos_id=1, eos_id=2)
        self.vocabulary = vocabulary

    @property
    def fitted(self) -> bool:
        return self.vocabulary is not None

    def fit(self, texts: Iterable[str]) -> None:
        """Build the vocabulary from the training ``texts`` (kept if one was given)."""
        if self.vocabulary is None:
            self._build(char_vocabulary(texts, self.min_count))

    def init_args(self) -> dict:
        return {"vocabulary": self.vocabulary, "min_count": self.min_count}


def char_tokenizer(vocabulary: Sequence[str]) -> CharTokenizer:
    """A :class:`CharTokenizer` over a given ``vocabulary`` (as :func:`char_vocabulary` returns it)."""
    return CharTokenizer(list(vocabulary))


def checkpoint_kind(source: str, option: str) -> str:
    """Which pretrained checkpoint ``source`` names: ``"smollm2"`` (the asset), ``"gguf"`` (a ``.gguf`` file),
    ``"gpt2"`` or ``"gpt2_ml"`` (a folder, by its ``config.json``'s ``model_type``); a :class:`UsageError` naming
    ``option`` otherwise. The network factory and :class:`PretrainedTokenizer` read a source the same way."""
    if source == "smollm2":
        return "smollm2"
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UsageError(f"{option}: no GGUF file {source}")
        return "gguf"
    if not path.is_dir():
        raise UsageError(f"{option}: {source} is neither 'smollm2', a .gguf file nor a folder")
    config = path / "config.json"
    if not config.is_file():
        raise UsageError(f"{option}: {config} is missing (a GPT-2 or GPT2_ML folder needs its config.json)")
    from kexue.models.checkpoints import read_json_config

    model_type = read_json_config(config, optional={"model_type": str}).get("model_type")
    if model_type == "gpt2":
        return "gpt2"
    if model_type in (None, "gpt2_ml"):
        return "gpt2_ml"
    raise UsageError(f"{option}: {config} says model_type={model_type!r}; causal LM folders supported: gpt2, "
                     "gpt2_ml (and .gguf Llama files)")


class PretrainedTokenizer(LMTokenizer):
    """The tokenizer of pretrained checkpoint ``source``, with its pad/bos/eos ids and its BOS/EOS flags.

    Args:
        source: ``smollm2`` (the asset, ``kexue fetch smollm2``), a Llama ``.gguf`` file (its byte-level BPE,
            ``<bos>``/``<eos>`` and ``add_bos_token``/``add_eos_token`` from the file, padding with ``<eos>``), a
            Hugging Face GPT-2 folder (``vocab.json`` + ``merges.txt``; ``<|endoftext|>`` is BOS, EOS and padding,
            added to texts when ``tokenizer_config.json`` says ``add_bos_token`` / ``add_eos_token``: by default
            neither, as in transformers), or a GPT2_ML folder (``vocab.txt`` WordPiece; ``[CLS]`` text ``[SEP]``,
            ``[PAD]``).
    """

    def __init__(self, source: str) -> None:
        kind, self.source = checkpoint_kind(source, "data.tokenizer.source"), source
        if kind in ("smollm2", "gguf"):
            from kexue.models.gguf import load_gguf_tokenizer, smollm2_path

            tokenizer, bos, eos, add_bos, add_eos = load_gguf_tokenizer(
                smollm2_path() if kind == "smollm2" else source)
            super().__init__(tokenizer, pad_id=eos if eos is not None else 0, bos_id=bos, eos_id=eos,
                             add_bos=add_bos, add_eos=add_eos)
            return
        from kexue.models.tokenizers import gpt2_tokenizer, special_token_flags, wordpiece_tokenizer

        if kind == "gpt2":
            tokenizer = gpt2_tokenizer(source)
            eos = tokenizer.token_to_id("<|endoftext|>")
            add_bos, add_eos = special_token_flags(source)
            super().__init__(tokenizer, pad_id=eos if eos is not None else 0, bos_id=eos, eos_id=eos,
                             add_bos=add_bos, add_eos=add_eos)
            return
        # GPT2_ML has no flags: bert4keras' GPT2_ML example continues [CLS] text, trained on [CLS] text [SEP].
        tokenizer = wordpiece_tokenizer(Path(source) / "vocab.txt", special_tokens=False)
        # [SEP] ends a continuation and decode must drop it, as every other special piece: registered as special.
        specials = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if tokenizer.token_to_id(t) is not None]
        tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        super().__init__(tokenizer, pad_id=tokenizer.token_to_id("[PAD]") or 0,
                         bos_id=tokenizer.token_to_id("[CLS]"), eos_id=tokenizer.token_to_id("[SEP]"))

    def init_args(self) -> dict:
        return {"source": self.source}


__all__ = ["CharTokenizer", "LMTokenizer", "PretrainedTokenizer", "char_tokenizer", "checkpoint_kind"]
