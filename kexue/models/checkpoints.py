"""Reading and writing pretrained checkpoints by explicit key maps, the nanoGPT ``from_pretrained`` way: every tensor
of our module is named, the checkpoint key it comes from is named, and its shape is checked.

A *key map* is ``{our key: their key}``; a tuple of their keys means the tensors are concatenated along the first
dimension (Hugging Face BERT's separate ``query``/``key``/``value`` Linear weights become our fused ``qkv``). Tied
parameters (a language model's output matrix that is its embedding) are filled once through their first name.

A Hugging Face folder holds ``config.json`` and ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``, or a ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``).

Every loader reads its files here and only here — JSON by :func:`read_json_config` (the keys it needs and their
kinds), tensors by :func:`read_state` / :func:`read_weights`, a library's own reader inside :func:`read_by_library`,
the network built from the sizes inside :func:`built_from` — so that a file that is missing, not JSON, of the wrong
shape or kinds, truncated or of another architecture is one :class:`CheckpointError` line naming the file and the
key (exit 2 in the CLI), whatever the loader.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from kexue.errors import UsageError, one_line

Source = str | tuple[str, ...]  # their key, or keys concatenated along dim 0
KeyMap = Mapping[str, Source]  # our key -> their key(s)


class CheckpointError(UsageError, ValueError):
    """A checkpoint file that is not what its loader needs (not JSON, a size that is not a positive integer,
    truncated weights, another model's tensors): one line naming the file and, where it applies, the field. A
    :class:`~kexue.errors.UsageError` for the CLI (exit 2) and a ``ValueError`` for Python callers."""


class MissingCheckpointFile(UsageError, FileNotFoundError):
    """A checkpoint folder or one of its files that is not there: a UsageError (exit 2) and a FileNotFoundError."""


# What a config field must hold: a size (int) is a positive integer, a number (float) finite and >= 0, a flag a
# JSON true/false, a str a string, a dict or list a JSON object or array.
FieldKind = type | tuple[type, ...]
KIND_NAMES = {int: "a positive integer", float: "a number >= 0", bool: "true or false", str: "a string",
              dict: "a JSON object", list: "a JSON array"}


def folder(path: str | Path) -> Path:
    """``path`` as a ``Path`` to an existing folder, else a :class:`MissingCheckpointFile` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise MissingCheckpointFile("no checkpoint folder there", path)
    return path


def _fits(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return isinstance(value, kind)


def check_field(config: Mapping, key: str, kind: FieldKind, file: str | Path) -> None:
    """A :class:`CheckpointError` naming ``file`` and ``key`` unless ``config[key]`` is of ``kind`` (a type or a
    tuple of types, see ``KIND_NAMES``: ``int`` means a positive integer, ``float`` a finite number >= 0)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = config[key]
    if not any(_fits(value, k) for k in kinds):
        want = " or ".join(KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise CheckpointError(f"{key!r} must be {want}, found {json.dumps(value, ensure_ascii=False)[:40]}", file)


def read_json_config(file: str | Path, required: Mapping[str, FieldKind] | None = None,
                     optional: Mapping[str, FieldKind] | None = None) -> dict:
    """The JSON object in ``file`` (a checkpoint's ``config.json``, ``tokenizer_config.json``, a shard index), its
    ``required`` keys present and each of ``required`` and ``optional`` (when present and not null) of its kind.

    The one reader of a checkpoint's JSON: a missing file, bytes that are not UTF-8, text that is not JSON, JSON that
    is not an object, a missing key or a value of the wrong kind is one line naming the file (and line or key):
    :class:`MissingCheckpointFile` or :class:`CheckpointError`.
    """
    file = Path(file)
    if not file.is_file():
        raise MissingCheckpointFile(f"missing (a checkpoint folder needs {file.name} next to its weights)", file)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"not UTF-8 text ({err.reason} at byte {err.start})", file) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"not valid JSON ({err.msg}, column {err.colno})", file, err.lineno) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"expected a JSON object of settings, found a JSON {_json_kind(config)}", file)
    for key, kind in (required or {}).items():
        if key not in config:
            raise CheckpointError(f"lacks {key!r}", file)
        check_field(config, key, kind, file)
    for key, kind in (optional or {}).items():
        if config.get(key) is not None:
            check_field(config, key, kind, file)
    return config


def _json_kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_config(path: str | Path, name: str = "config.json", required: Mapping[str, FieldKind] | None = None,
                optional: Mapping[str, FieldKind] | None = None) -> dict:
    """The JSON config ``name`` of the checkpoint folder ``path``, checked by :func:`read_json_config`."""
    return read_json_config(folder(path) / name, required, optional)


def weights_file(path: str | Path) -> Path:
    """The file :func:`read_state` reads in the folder ``path`` (``model.safetensors``, the shard index or
    ``pytorch_model.bin``, in that order of preference), else a :class:`MissingCheckpointFile`."""
    root = folder(path)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        if (root / name).is_file():
            return root / name
    raise MissingCheckpointFile("has no model.safetensors, model.safetensors.index.json or pytorch_model.bin", root)


def read_weights(file: str | Path) -> dict[str, Tensor]:
    """The tensors of one weights file (``.safetensors``, or a ``torch.save`` pickle read with
    ``weights_only=True``); a file the library cannot read (truncated, another format) is a
    :class:`CheckpointError` naming it. The one place a checkpoint's tensors are read."""
    from safetensors.torch import load_file

    file = Path(file)
    if not file.is_file():
        raise MissingCheckpointFile("missing (the weights file a checkpoint names)", file)
    with read_by_library(file, "cannot read the weights: truncated or not a weights file?"):
        if file.suffix == ".safetensors":
            return load_file(file)
        state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"expected a dict of tensors, found a {type(state).__name__}", file)
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def read_state(path: str | Path) -> dict[str, Tensor]:
    """All tensors of the checkpoint folder ``path``: ``model.safetensors``, its shards, or ``pytorch_model.bin``."""
    file = weights_file(path)
    if file.name != "model.safetensors.index.json":
        return read_weights(file)
    index = read_json_config(file, required={"weight_map": dict})
    shards = index["weight_map"].values()
    bad = next((s for s in shards if not isinstance(s, str) or Path(s).name != s), None)
    if bad is not None:
        raise CheckpointError(f"'weight_map' names {json.dumps(bad)[:40]}, not a file next to it", file)
    return {k: v for shard in sorted(set(shards)) for k, v in read_weights(file.parent / shard).items()}


@contextmanager
def built_from(file: str | Path) -> Iterator[None]:
    """Builds a network from the sizes of ``file``: a ``ValueError`` or ``TypeError`` raised inside (sizes each valid
    alone that do not fit together, such as heads that do not divide the width) becomes a :class:`CheckpointError`
    naming ``file``."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"its settings make no network ({one_line(err, 200, with_type=False)})", file) from err


@contextmanager
def read_by_library(file: str | Path, what: str = "cannot read it") -> Iterator[None]:
    """Reads ``file`` through a library (safetensors, torch, tokenizers): whatever it raises other than a
    UsageError becomes a :class:`CheckpointError` naming ``file``, ``what`` failed and the library's words."""
    try:
        yield
    except (UsageError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # noqa: BLE001 (a Rust library's panic is a BaseException; the file is at fault)
        raise CheckpointError(f"{what} ({one_line(err, 200)})", file) from err


def _targets(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s state-dict tensors, each shared tensor under its first name only."""
    seen, out = set(), {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out[key] = tensor
    return out


def _fetch(state: Mapping[str, Tensor], source: Source, ours: str, origin: str) -> Tensor:
    keys = (source,) if isinstance(source, str) else source
    for key in keys:
        if key not in state:
            raise CheckpointError(f"{origin} lacks {key!r} (for our {ours!r})")
    parts = [state[k] for k in keys]
    if len(parts) == 1:
        return parts[0]
    if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
        shapes = ", ".join(f"{k} {tuple(p.shape)}" for k, p in zip(keys, parts))
        raise CheckpointError(f"{origin}: cannot concatenate {shapes} into our {ours!r}")
    return torch.cat(parts)  # (sum of rows, ...)


def assign(module: nn.Module, state: Mapping[str, Tensor], key_map: KeyMap, ignore: Iterable[str] = (),
           origin: str = "checkpoint") -> None:
    """Copy ``state``'s tensors into ``module`` by ``key_map``, checking every shape.

    Args:
        module: the module to fill (its parameters keep their dtype; the checkpoint's are cast).
        state: their tensors by key.
        key_map: ``{our key: their key or tuple of keys}`` covering every tensor of ``module``.
        ignore: regular expressions (``re.search``) for their keys that are known and not used (buffers, tied copies,
            heads we do not build); any other key the map leaves unused is an error.
        origin: how errors name the checkpoint (its path).

    Raises:
        CheckpointError: (a UsageError and a ValueError) a tensor's shape differs (naming our key, their key and both
            shapes), a key is missing, ``state`` holds none of the keys (another architecture's weights), or it has
            keys neither mapped nor ignored.
        ValueError: the key map and ``module`` disagree (a bug in the loader, not in the checkpoint).
    """
    targets = _targets(module)
    unmapped = [k for k in targets if k not in key_map]
    if unmapped:
        raise ValueError(f"no checkpoint key mapped to our {unmapped[0]!r} ({len(unmapped)} unmapped in all)")
    wanted = [k for source in key_map.values() for k in ((source,) if isinstance(source, str) else source)]
    if wanted and state and not any(k in state for k in wanted):
        raise CheckpointError(f"{origin} holds none of the tensors this model needs (such as {wanted[0]!r}; it has "
                              f"{next(iter(state))!r}, ...): the weights of another architecture?")
    for ours, source in key_map.items():
        if ours not in targets:
            raise ValueError(f"the key map names our {ours!r}, which the module does not have")
        tensor = _fetch(state, source, ours, origin)
        target = targets[ours]
        if tensor.shape != target.shape:
            theirs = source if isinstance(source, str) else " + ".join(source)
            raise CheckpointError(f"{origin}: {theirs!r} has shape {tuple(tensor.shape)} but our {ours!r} has "
                                  f"shape {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensor)
    used = set(wanted)
    patterns = [re.compile(p) for p in ignore]
    unexpected = sorted(k for k in state if k not in used and not any(p.search(k) for p in patterns))
    if unexpected:
        shown = ", ".join(repr(k) for k in unexpected[:5])
        raise CheckpointError(f"{origin} has {len(unexpected)} unexpected key(s): {shown}"
                              f"{' ...' if len(unexpected) > 5 else ''} (a config that does not match the weights?)")


def gather(module: nn.Module, key_map: KeyMap) -> dict[str, Tensor]:
    """The inverse of :func:`assign`: ``module``'s tensors under their keys, a fused tensor split evenly along its
    first dimension among the keys of its tuple. Returns contiguous CPU copies (what ``safetensors`` writes)."""
    targets = _targets(module)
    out = {}
    for ours, source in key_map.items():
        tensor = targets[ours].detach().cpu()
        keys = (source,) if isinstance(source, str) else source
        for key, part in zip(keys, tensor.chunk(len(keys))):
            out[key] = part.contiguous().clone()
    return out


__all__ = ["CheckpointError", "KeyMap", "MissingCheckpointFile", "Source", "assign", "built_from", "check_field",
           "folder", "gather", "read_by_library", "read_config", "read_json_config", "read_state", "read_weights",
           "weights_file"]
