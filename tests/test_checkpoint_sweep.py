"""Every foreign-checkpoint loader × every way its files can be wrong (issue 29): a BERT folder, a GPT-2 folder, a
GPT2_ML folder and a Llama GGUF file, each built tiny here, then broken one file at a time — a file missing, a
``config.json`` that is not UTF-8, not JSON, a list, with a size as a string, negative or missing, a weights file
empty, truncated or of another architecture, a vocabulary file broken. Each case must end in one
:class:`~kexue.errors.UsageError` line that names the broken file and, for a config field, the field: never another
exception type (the CLI's exit 1) and never a library's message without the file.

The loaders are called as the CLI calls them (``BertFromFolder`` + ``bert_tokenizer`` for ``--model.bert.path``,
``PretrainedCausalLM`` + ``PretrainedTokenizer`` for ``--model.net.source``), in-process: the sweep takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from kexue.errors import UsageError
from kexue.models.bert import Bert, BertFromFolder
from kexue.models.causal_lm import CausalLM
from kexue.models.checkpoints import gather
from kexue.models.gpt2 import GPT2ML, gpt2_key_map, gpt2_ml_key_map
from kexue.models.lm_tokenizers import PretrainedTokenizer
from kexue.models.pretrained import PretrainedCausalLM
from kexue.models.tokenizers import bert_tokenizer, wordpiece_tokenizer
from kexue.nn import TransformerConfig

PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefgh"]
STACK = dict(dim=8, num_layers=1, num_heads=2, ffn_dim=16, max_length=16)


def _bert(root: Path) -> Path:
    root.mkdir()
    (root / "vocab.txt").write_text("\n".join(PIECES) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    Bert(len(PIECES), TransformerConfig(**STACK), pooler=True, mlm=True).save_pretrained(
        root, wordpiece_tokenizer(root / "vocab.txt"))
    return root


def _gpt2(root: Path) -> Path:
    root.mkdir()
    stack = TransformerConfig(**STACK, positions="learned", prenorm=True, final_norm=True, activation="gelu_tanh")
    torch.manual_seed(0)
    state = gather(CausalLM(len(PIECES), stack, tie_embeddings=True), gpt2_key_map(1))
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    state = {k: v.t().contiguous() if k.endswith(conv1d) else v for k, v in state.items()}  # Linear -> Conv1D
    save_file(state, root / "model.safetensors")
    (root / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "vocab_size": len(PIECES), "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16,
         "n_inner": 16, "activation_function": "gelu_new"}), encoding="utf-8")
    (root / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate([*"abcdefghij", "ab"])}), encoding="utf-8")
    (root / "merges.txt").write_text("#version: 0.2\na b\n", encoding="utf-8")  # "ab" is id 10
    return root


def _gpt2_ml(root: Path) -> Path:
    root.mkdir()
    torch.manual_seed(0)
    state = gather(GPT2ML(len(PIECES), TransformerConfig(**STACK)), gpt2_ml_key_map(1))
    kernels = ("_layer/kernel", "intermediate/kernel", "output/kernel")
    save_file({k: v.t().contiguous() if k.endswith(kernels) else v for k, v in state.items()},
              root / "model.safetensors")
    (root / "config.json").write_text(json.dumps(
        {"vocab_size": len(PIECES), "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
         "intermediate_size": 16, "max_position_embeddings": 16, "hidden_act": "gelu"}), encoding="utf-8")
    (root / "vocab.txt").write_text("\n".join(PIECES) + "\n", encoding="utf-8")
    return root


def _gguf(root: Path) -> Path:
    from tests.test_gguf import random_llama, write_gguf

    root.mkdir()
    write_gguf(root / "tiny.gguf", random_llama(tied=True))
    return root


def _load_bert(root: Path) -> None:
    BertFromFolder(str(root))
    bert_tokenizer(root)


def _load_causal(source: str) -> None:
    PretrainedTokenizer(source)
    PretrainedCausalLM(source)


LOADERS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], None]]] = {
    "bert": (_bert, _load_bert),
    "gpt2": (_gpt2, lambda root: _load_causal(str(root))),
    "gpt2_ml": (_gpt2_ml, lambda root: _load_causal(str(root))),
    "gguf": (_gguf, lambda root: _load_causal(str(root / "tiny.gguf"))),
}
SIZE = {"bert": "hidden_size", "gpt2": "n_embd", "gpt2_ml": "hidden_size"}  # a size each config.json must give
VOCAB = {"bert": "vocab.txt", "gpt2": "vocab.json", "gpt2_ml": "vocab.txt"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One good checkpoint of each kind (built once; each case breaks its own copy)."""
    base = tmp_path_factory.mktemp("checkpoints")
    return {name: build(base / name) for name, (build, _) in LOADERS.items()}


def _config(key: str | None, value: object) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        if value is None:
            del config[key]
        else:
            config[key] = value
        (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return edit


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / name).write_bytes(data)


def _truncate(name: str) -> Callable[[Path], None]:
    def cut(root: Path) -> None:
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    return cut


def _bert_weights_in(root: Path) -> None:
    """Another architecture's tensors: a BERT folder's weights where GPT-2's or GPT2_ML's belong."""
    shutil.copy(_bert(root / "other") / "model.safetensors", root / "model.safetensors")


def _gpt2_weights_in(root: Path) -> None:
    shutil.copy(_gpt2(root / "other") / "model.safetensors", root / "model.safetensors")


# (defect, which file breaks, the field the line must name, the edit); the file is named by each message
FOLDER_DEFECTS = [
    ("config missing", "config.json", None, lambda root: (root / "config.json").unlink()),
    ("config empty", "config.json", None, _write("config.json", b"")),
    ("config latin-1", "config.json", None, _write("config.json", '{"vocab_size": "é"}'.encode("latin-1"))),
    ("config not JSON", "config.json", None, _write("config.json", b"vocab_size = 11\n")),
    ("config a list", "config.json", None, _write("config.json", b"[1, 2]")),
    ("size a string", "config.json", "SIZE", "string"),
    ("size negative", "config.json", "SIZE", -8),
    ("size a float", "config.json", "SIZE", 8.5),
    ("size missing", "config.json", "SIZE", None),
    ("sizes do not fit", "config.json", None, "heads"),
    ("weights missing", "model.safetensors", None, lambda root: (root / "model.safetensors").unlink()),
    ("weights empty", "model.safetensors", None, _write("model.safetensors", b"")),
    ("weights truncated", "model.safetensors", None, _truncate("model.safetensors")),
    ("weights not safetensors", "model.safetensors", None, _write("model.safetensors", b"not tensors\n" * 4)),
    ("weights of another architecture", "model.safetensors", None, "other"),
    ("pytorch_model.bin garbage", "pytorch_model.bin", None, "bin"),
    ("vocabulary missing", "VOCAB", None, "unlink"),
    ("vocabulary latin-1", "VOCAB", None, "latin-1"),
    ("vocabulary empty", "VOCAB", None, "empty"),
]


def _folder_edit(kind: str, defect: str, edit: object) -> Callable[[Path], None]:
    vocab = VOCAB[kind]
    if callable(edit):
        return edit
    if edit == "heads":  # each size valid alone; the heads do not divide the width
        return _config({"bert": "num_attention_heads", "gpt2": "n_head", "gpt2_ml": "num_attention_heads"}[kind], 3)
    if defect.startswith("size "):
        return _config(SIZE[kind], edit)
    if edit == "other":
        return _bert_weights_in if kind != "bert" else _gpt2_weights_in
    if edit == "bin":
        def bin_(root: Path) -> None:
            (root / "model.safetensors").unlink()
            (root / "pytorch_model.bin").write_bytes(b"\x80\x02garbage")
        return bin_
    if edit == "unlink":
        return lambda root: (root / vocab).unlink()
    if edit == "latin-1":
        return _write(vocab, "[PAD]\n[UNK]\nçé\n".encode("latin-1") if vocab == "vocab.txt"
                      else '{"é": 0}'.encode("latin-1"))
    return _write(vocab, b"")


CASES = [pytest.param(kind, *row, id=f"{kind}-{row[0]}") for kind in ("bert", "gpt2", "gpt2_ml")
         for row in FOLDER_DEFECTS]


def _assert_one_line(err: BaseException, *fragments: str) -> None:
    assert isinstance(err, UsageError), f"{type(err).__name__}: {err}"
    text = str(err)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.parametrize(("kind", "defect", "file", "field", "edit"), CASES)
def test_a_broken_checkpoint_folder_is_one_line_naming_the_file(folders: dict[str, Path], tmp_path: Path, kind: str,
                                                                defect: str, file: str, field: str | None,
                                                                edit: object) -> None:
    root = shutil.copytree(folders[kind], tmp_path / kind)
    _folder_edit(kind, defect, edit)(root)
    file = VOCAB[kind] if file == "VOCAB" else file
    with pytest.raises(Exception) as err:
        LOADERS[kind][1](root)
    if defect == "weights missing":  # the folder is named, with the files it may hold
        _assert_one_line(err.value, str(root), "model.safetensors", "pytorch_model.bin")
    else:
        _assert_one_line(err.value, str(root / file), *([SIZE[kind]] if field else []))


@pytest.mark.parametrize("defect", ["missing", "empty", "not GGUF", "truncated", "last tensor cut", "a folder"])
def test_a_broken_gguf_file_is_one_line_naming_it(folders: dict[str, Path], tmp_path: Path, defect: str) -> None:
    root = shutil.copytree(folders["gguf"], tmp_path / "gguf")
    path = root / "tiny.gguf"
    if defect == "missing":
        path.unlink()
    elif defect == "empty":
        path.write_bytes(b"")
    elif defect == "not GGUF":
        path.write_text("this is a text file\n" * 20, encoding="utf-8")
    elif defect == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    elif defect == "last tensor cut":
        path.write_bytes(path.read_bytes()[:-64])
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(Exception) as err:
        LOADERS["gguf"][1](root)
    _assert_one_line(err.value, str(path))


@pytest.mark.parametrize("kind", ["bert", "gpt2", "gpt2_ml", "gguf"])
def test_the_good_checkpoints_load(folders: dict[str, Path], kind: str) -> None:
    """The sweep's baseline: without a defect each loader reads its folder (else every case above passes
    vacuously on the same unrelated error)."""
    LOADERS[kind][1](folders[kind])


@pytest.mark.parametrize("failure", ["pip fails", "archive corrupt", "cache is a file"])
def test_a_failed_fetch_says_which_asset_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture, failure: str) -> None:
    """``kexue fetch`` failures are ``cannot fetch NAME: <why>``, exit 2 — not the boundary's default "cannot build
    the model or data" (what an exception of another type than UsageError got before)."""
    import hashlib

    from kexue import assets
    from kexue.cli import main

    garbage = b"neither a zip nor a tar" * 10
    asset = assets.Asset("fake", "fake==1.0", "fake-1.0.tar.gz", hashlib.sha256(garbage).hexdigest(),
                         {"model.bin": "fake-1.0/model.bin"}, sdist=True, licence="MIT")

    def download(requirement: str, sdist: bool, dest: Path) -> None:
        if failure == "pip fails":
            raise UsageError("`pip download fake==1.0` failed (exit 1): No matching distribution found")
        (dest / asset.archive).write_bytes(garbage)

    monkeypatch.setitem(assets.ASSETS, "fake", asset)
    monkeypatch.setattr(assets, "pip_download", download)
    cache = tmp_path / "cache"
    if failure == "cache is a file":
        cache.write_text("not a folder")
    assert main(["fetch", "fake", "--cache_dir", str(cache)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # "fetching fake: ..." first, then the one error line
    assert lines[-1].startswith("kexue: error: cannot fetch fake: ") and "Traceback" not in "".join(lines), lines
    assert {"pip fails": "No matching distribution", "archive corrupt": "ReadError",
            "cache is a file": str(cache)}[failure] in lines[-1], lines
