"""Tokenizers of pretrained checkpoints, assembled from Hugging Face ``tokenizers`` parts (fast, picklable, used in
the DataModules' collate): BERT's WordPiece from a ``vocab.txt`` and GPT-2's byte-level BPE from ``vocab.json`` +
``merges.txt``. They give the ids ``transformers``' ``BertTokenizerFast`` / ``GPT2TokenizerFast`` give (tested).

Posts: 当Bert遇上Keras (https://kexue.fm/archives/6736) for BERT's tokenisation (lower-casing, one token per CJK
character, ``##`` word pieces); 现在可以用Keras玩中文GPT2了 (https://kexue.fm/archives/7292): GPT2_ML uses the same
WordPiece on bert-base-chinese's vocabulary.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from kexue.errors import UsageError
from kexue.models.checkpoints import CheckpointError, MissingCheckpointFile, folder, read_by_library, read_json_config
from kexue.nn.components import FittedComponent
from kexue.seq2seq import CharVocab, build_char_vocab
from kexue.text.vocabulary import check_pieces


def _file(path: Path, name: str) -> Path:
    file = path / name if path.is_dir() else path
    if not file.is_file():
        raise MissingCheckpointFile(f"missing (the tokenizer needs its {name})", file)
    return file


def wordpiece_tokenizer(vocab: str | Path, lowercase: bool = True, special_tokens: bool = True) -> Tokenizer:
    """BERT's tokenizer over ``vocab`` (a ``vocab.txt``, one piece a line, the line number its id).

    Args:
        lowercase: lower-case and strip accents (uncased and Chinese checkpoints) — ``do_lower_case``.
        special_tokens: wrap each text as ``[CLS] text [SEP]`` (a pair as ``[CLS] a [SEP] b [SEP]`` with token types
            0 then 1); ``False`` for a language model such as GPT2_ML.

    Batches (``encode_batch``) are padded with ``[PAD]`` to their longest text.
    """
    file = _file(Path(vocab), "vocab.txt")
    with read_by_library(file, "cannot read it as a vocab.txt (one UTF-8 piece a line)"):
        pieces = models.WordPiece.read_file(str(file))
    for token in ("[UNK]", *(("[CLS]", "[SEP]") if special_tokens else ())):
        if token not in pieces:
            raise CheckpointError(f"has no {token} piece", file)
    tokenizer = Tokenizer(models.WordPiece(pieces, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=None, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    if special_tokens:
        cls, sep = ("[CLS]", pieces["[CLS]"]), ("[SEP]", pieces["[SEP]"])
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[cls, sep])
    if "[PAD]" in pieces:
        tokenizer.enable_padding(pad_id=pieces["[PAD]"], pad_token="[PAD]")
    return tokenizer


def bert_tokenizer(path: str | Path) -> Tokenizer:
    """:func:`wordpiece_tokenizer` of a Hugging Face BERT folder: its ``vocab.txt``, lower-cased unless its
    ``tokenizer_config.json`` says ``"do_lower_case": false``."""
    root = folder(path)
    config = root / "tokenizer_config.json"
    lowercase = read_json_config(config, optional={"do_lower_case": bool}).get("do_lower_case", True) \
        if config.is_file() else True
    return wordpiece_tokenizer(root / "vocab.txt", lowercase=lowercase)


GPT2_SPECIALS = ("<|endoftext|>",)  # GPT-2's one special token: it starts, ends and pads texts


def gpt2_tokenizer(path: str | Path, merges: str | Path | None = None) -> Tokenizer:
    """GPT-2's byte-level BPE: ``path`` a folder with ``vocab.json`` and ``merges.txt``, or the ``vocab.json``
    itself with ``merges`` its ``merges.txt``.

    ``<|endoftext|>`` and the folder's own special tokens (``special_tokens_map.json``, the ``special`` entries of
    ``tokenizer_config.json``'s ``added_tokens_decoder``) are special tokens, as in ``GPT2TokenizerFast``: the text
    ``<|endoftext|>`` is that one id, and ``decode(..., skip_special_tokens=True)`` drops them. Texts get a BOS
    (the folder's ``bos_token``) when ``tokenizer_config.json`` says ``add_bos_token``, an EOS when it says
    ``add_eos_token`` (both off by default, as in transformers): :func:`special_token_flags`."""
    path = Path(path)
    vocab = _file(path, "vocab.json")
    merges = _file(path if merges is None else Path(merges), "merges.txt")
    with read_by_library(vocab, f"cannot read it with {merges.name} as a byte-level BPE"):
        tokenizer = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    root = path if path.is_dir() else path.parent
    specials = [t for t in (*GPT2_SPECIALS, *_folder_specials(root)) if tokenizer.token_to_id(t) is not None]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(specials)])
    add_bos, add_eos = special_token_flags(root)
    bos, eos = (_folder_token(root, name) or GPT2_SPECIALS[0] for name in ("bos_token", "eos_token"))
    frame = [(t, tokenizer.token_to_id(t)) for t, on in ((bos, add_bos), (eos, add_eos)) if on]
    if frame and all(i is not None for _, i in frame):
        single = " ".join([bos] * add_bos + ["$A"] + [eos] * add_eos)
        pair = single.replace("$A", "$A $B")
        tokenizer.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=single, pair=pair, special_tokens=list(dict(frame).items()))])
    return tokenizer


def _json_file(path: Path) -> dict:
    """A folder's JSON settings file as a dict (``{}`` when absent); a ValueError naming it when it is not an
    object of JSON."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON object is needed, got a {type(data).__name__}")
    return data


def _token_text(value: object) -> str | None:
    """A special token as ``special_tokens_map.json`` / ``tokenizer_config.json`` write it: a string or
    ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _folder_token(root: Path, name: str) -> str | None:
    """The folder's ``name`` token (``bos_token``, ``eos_token``...) from its settings files, if it names one."""
    for file in ("tokenizer_config.json", "special_tokens_map.json"):
        token = _token_text(_json_file(root / file).get(name))
        if token is not None:
            return token
    return None


def _folder_specials(root: Path) -> list[str]:
    """Every special token a Hugging Face folder's settings name."""
    tokens = [_token_text(v) for k, v in _json_file(root / "special_tokens_map.json").items() if k.endswith("_token")]
    config = _json_file(root / "tokenizer_config.json")
    tokens += [_token_text(config.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")]
    added = config.get("added_tokens_decoder")
    if isinstance(added, dict):
        tokens += [_token_text(v) for v in added.values() if isinstance(v, dict) and v.get("special")]
    return [t for t in tokens if t]


def special_token_flags(root: str | Path) -> tuple[bool, bool]:
    """``(add_bos, add_eos)`` of a Hugging Face tokenizer folder: its ``tokenizer_config.json``'s ``add_bos_token``
    and ``add_eos_token``, ``False`` when unset (transformers' GPT-2 defaults); a ValueError naming the file when
    one is not a boolean."""
    file = Path(root) / "tokenizer_config.json"
    config = _json_file(file)
    flags = []
    for key in ("add_bos_token", "add_eos_token"):
        value = config.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{file}: {key} must be true or false, got {value!r}")
        flags.append(value)
    return flags[0], flags[1]


BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
                    lowercase: bool = True) -> Tokenizer:
    """A BERT WordPiece vocabulary trained on ``texts`` with ``tokenizers``' WordPiece trainer, for a Chinese model
    trained here (every CJK character is its own word, as in bert-base-chinese; Latin words split into ``##``
    pieces). Returns :func:`wordpiece_tokenizer`'s tokenizer over the trained pieces: ids 0-4 are
    ``[PAD] [UNK] [CLS] [SEP] [MASK]``; :func:`save_wordpiece` writes its ``vocab.txt``.
    """
    if vocab_size <= len(BERT_SPECIALS):
        raise ValueError(f"vocab_size must exceed the {len(BERT_SPECIALS)} special tokens, got {vocab_size}")
    trainer_side = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainer_side.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                         strip_accents=None, lowercase=lowercase)
    trainer_side.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(BERT_SPECIALS), continuing_subword_prefix="##")
    trainer_side.train_from_iterator(texts, trainer)
    pieces = trainer_side.get_vocab()  # piece -> id, 0..V-1
    tokenizer = Tokenizer(models.WordPiece(pieces, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer, tokenizer.pre_tokenizer = trainer_side.normalizer, trainer_side.pre_tokenizer
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", pieces["[CLS]"]), ("[SEP]", pieces["[SEP]"])])
    tokenizer.enable_padding(pad_id=pieces["[PAD]"], pad_token="[PAD]")
    return tokenizer


def save_wordpiece(tokenizer: Tokenizer, path: str | Path) -> None:
    """Write a WordPiece ``tokenizer`` into a Hugging Face folder: ``vocab.txt`` (pieces in id order),
    ``tokenizer.json`` and ``tokenizer_config.json`` (``do_lower_case`` from its normaliser)."""
    if not isinstance(tokenizer.model, models.WordPiece):
        raise ValueError(f"save_wordpiece needs a WordPiece tokenizer, got a {type(tokenizer.model).__name__} model")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    by_id = sorted(tokenizer.get_vocab(with_added_tokens=False).items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError("the tokenizer's piece ids are not 0..V-1 without gaps; vocab.txt cannot hold them")
    (path / "vocab.txt").write_text("".join(f"{piece}\n" for piece, _ in by_id), encoding="utf-8")
    tokenizer.save(str(path / "tokenizer.json"))
    lowercase = getattr(tokenizer.normalizer, "lowercase", True)
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase, "unk_token": "[UNK]", "sep_token": "[SEP]",
         "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}, indent=2) + "\n", encoding="utf-8")


def vocabulary_tokenizer(vocabulary: Sequence[str]) -> Tokenizer:
    """:func:`kexue.models.tokenizers.wordpiece_tokenizer` over ``vocabulary`` (pieces in id order), without
    padding, the five specials matched as whole tokens in text (so ``[MASK]`` in a predict line is one token)."""
    if tuple(vocabulary[: len(BERT_SPECIALS)]) != BERT_SPECIALS:
        raise ValueError(f"data.vocabulary must start with {' '.join(BERT_SPECIALS)}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("".join(f"{piece}\n" for piece in vocabulary), encoding="utf-8")
        tokenizer = wordpiece_tokenizer(Path(tmp) / "vocab.txt")
    tokenizer.no_padding()
    tokenizer.add_special_tokens(list(BERT_SPECIALS))
    return tokenizer


class BertCharTokenizer(FittedComponent):
    """A DataModule's tokenizer component for the BERTs that read one token per character (task
    ``reading_comprehension``'s UniLM, whose answers are copied from the passage character by character, and task
    ``cond_lm``): :class:`kexue.seq2seq.CharVocab` over a vocabulary built from the training texts by
    :func:`kexue.text.vocabulary.char_vocabulary` with BERT's specials (:data:`kexue.seq2seq.BERT_SPECIALS`).

    The DataModule calls :meth:`fit` on its training texts once and keeps :attr:`vocabulary` in its hyperparameters
    (``data.tokenizer.init_args.vocabulary``, a ``featurization`` argument), so a checkpoint tokenises as in
    training; the model gets :attr:`vocab_size` and :attr:`vocabulary` by links. Plain Python and picklable: the
    collate runs it in the DataLoader workers. Posts: https://kexue.fm/archives/6933, /7115.

    Args:
        vocabulary: the pieces in id order (``None``: built by :meth:`fit`).
        min_count: training characters seen fewer times become ``[UNK]``.
    """

    def __init__(self, vocabulary: list | None = None, min_count: int = 1) -> None:  # list: see check_pieces
        vocabulary = check_pieces(vocabulary, "data.tokenizer.vocabulary")
        if min_count < 1:
            raise UsageError(f"data.tokenizer.min_count must be >= 1, got {min_count}")
        self.min_count = min_count
        self._vocab = None if vocabulary is None else CharVocab(tuple(vocabulary))

    @property
    def fitted(self) -> bool:
        """Whether the vocabulary exists (given, read from a folder, or built by :meth:`fit`)."""
        return self._vocab is not None

    def fit(self, texts: Iterable[str]) -> None:
        """Build the vocabulary from the training ``texts`` unless it exists."""
        if self._vocab is None:
            self._vocab = CharVocab(tuple(build_char_vocab(list(texts), self.min_count)))

    @property
    def vocab(self) -> CharVocab:
        """The :class:`~kexue.seq2seq.CharVocab` (``encode``, special ids)."""
        if self._vocab is None:
            raise RuntimeError("the tokenizer has no vocabulary yet: its DataModule fits it on the training split")
        return self._vocab

    @property
    def vocabulary(self) -> list[str]:
        """The pieces in id order."""
        return list(self.vocab.pieces)

    @property
    def vocab_size(self) -> int:
        """Ids ``V`` the network must embed."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text`` (no specials added)."""
        return self.vocab.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: specials dropped, ``[unused1]`` back to a space, ``##`` continuations joined."""
        return decode_pieces(self.vocab.pieces, ids)

    def init_args(self) -> dict:
        return {"vocabulary": self.vocabulary, "min_count": self.min_count}


class BertFolderCharTokenizer(BertCharTokenizer):
    """:class:`BertCharTokenizer` over a BERT folder's ``vocab.txt`` (``kexue run pretrain``'s ``<run>/bert/``,
    ``bert-base-chinese``): the tokenizer of :class:`kexue.models.BertFromFolder` on the same folder (a preset sets
    both, ``--config bert_folder``); :meth:`fit` keeps the folder's vocabulary.

    Args:
        path: the BERT folder.
    """

    def __init__(self, path: str) -> None:
        super().__init__(list(CharVocab.from_folder(path).pieces))
        self.path = path

    def init_args(self) -> dict:
        return {"path": self.path}


class TrainedWordPiece(FittedComponent):
    """Task ``pretrain``'s tokenizer component: BERT's WordPiece trained on the training split by
    :func:`train_wordpiece` (ids 0-4 ``[PAD] [UNK] [CLS] [SEP] [MASK]``), its pieces kept in the DataModule's
    hyperparameters (``data.tokenizer.init_args.vocabulary``) as :class:`BertCharTokenizer`'s are. Post:
    https://kexue.fm/archives/6915.

    Args:
        vocabulary: the pieces in id order (``None``: trained by :meth:`fit`).
        vocab_size: pieces to train (fewer when the text has fewer).
        min_frequency: pieces seen fewer times in training are left out.
    """

    def __init__(self, vocabulary: list | None = None, vocab_size: int = 8000, min_frequency: int = 2) -> None:
        vocabulary = check_pieces(vocabulary, "data.tokenizer.vocabulary")  # a bare list: see check_pieces
        if vocab_size <= len(BERT_SPECIALS) or min_frequency < 1:
            raise UsageError(f"data.tokenizer needs vocab_size > {len(BERT_SPECIALS)} and min_frequency >= 1, got "
                             f"{vocab_size} and {min_frequency}")
        if vocabulary is not None and tuple(vocabulary[: len(BERT_SPECIALS)]) != BERT_SPECIALS:
            raise UsageError(f"data.tokenizer.vocabulary must start with {' '.join(BERT_SPECIALS)}")
        self.target_size, self.min_frequency = vocab_size, min_frequency
        self.pieces = None if vocabulary is None else list(vocabulary)
        self._tokenizers: dict[int, Tokenizer] = {}

    @property
    def fitted(self) -> bool:
        """Whether the pieces exist."""
        return self.pieces is not None

    def fit(self, texts: Iterable[str]) -> None:
        """Train the pieces on ``texts`` unless they exist."""
        if self.pieces is None:
            tokenizer = train_wordpiece(texts, self.target_size, self.min_frequency)
            self.pieces = [p for p, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]

    @property
    def vocabulary(self) -> list[str]:
        """The pieces in id order."""
        if self.pieces is None:
            raise RuntimeError("the WordPiece has no pieces yet: its DataModule trains it on the training split")
        return list(self.pieces)

    @property
    def vocab_size(self) -> int:
        """Ids ``V`` the network must embed (at most the ``vocab_size`` argument, the training target)."""
        return len(self.vocabulary)

    def init_args(self) -> dict:
        return {"vocabulary": self.vocabulary, "vocab_size": self.target_size, "min_frequency": self.min_frequency}

    def tokenizer(self, max_length: int) -> Tokenizer:
        """:func:`vocabulary_tokenizer` of the pieces, cutting at ``max_length`` tokens (built once per length)."""
        if max_length not in self._tokenizers:
            tokenizer = vocabulary_tokenizer(self.vocabulary)
            tokenizer.enable_truncation(max_length)
            self._tokenizers[max_length] = tokenizer
        return self._tokenizers[max_length]


def decode_pieces(pieces: Sequence[str], ids: Iterable[int]) -> str:
    """Text of piece ids: ``[...]`` specials dropped except ``[unused1]`` (a space), ``##`` continuations joined to
    the piece before (a character vocabulary has none; a WordPiece one does)."""
    out = []
    for i in ids:
        piece = pieces[i]
        if piece == "[unused1]":
            out.append(" ")
        elif not (piece.startswith("[") and piece.endswith("]")):
            out.append(piece.removeprefix("##"))
    return "".join(out)


__all__ = ["BertCharTokenizer", "BertFolderCharTokenizer", "TrainedWordPiece", "bert_tokenizer",
           "decode_pieces", "gpt2_tokenizer", "save_wordpiece", "special_token_flags", "train_wordpiece",
           "vocabulary_tokenizer", "wordpiece_tokenizer"]
