"""Reading and writing pretrained checkpoints by explicit key maps, the nanoGPT ``from_pretrained`` way: every tensor
of our module is named, the checkpoint key it comes from is named, and its shape is checked.

A *key map* is ``{our key: their key}``; a tuple of their keys means the tensors are concatenated along the first
dimension (Hugging Face BERT's separate ``query``/``key``/``value`` Linear weights become our fused ``qkv``). Tied
parameters (a language model's output matrix that is its embedding) are filled once through their first name.

A Hugging Face folder holds ``config.json`` and ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``, or a ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

Source = str | tuple[str, ...]  # their key, or keys concatenated along dim 0
KeyMap = Mapping[str, Source]  # our key -> their key(s)


def folder(path: str | Path) -> Path:
    """``path`` as a ``Path`` to an existing folder, else a ``FileNotFoundError`` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {path}")
    return path


def read_config(path: str | Path, name: str = "config.json") -> dict:
    """The JSON config ``name`` of the checkpoint folder ``path``."""
    file = folder(path) / name
    if not file.is_file():
        raise FileNotFoundError(f"{file.parent} has no {name} (a checkpoint folder needs {name} next to its weights)")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON: {err}") from None


def read_state(path: str | Path) -> dict[str, Tensor]:
    """All tensors of the checkpoint folder ``path``: ``model.safetensors``, its shards, or ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    root = folder(path)
    if (root / "model.safetensors").is_file():
        return load_file(root / "model.safetensors")
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(root / shard).items()}
    if (root / "pytorch_model.bin").is_file():
        state = torch.load(root / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {k: v for k, v in state.items() if isinstance(v, Tensor)}
    raise FileNotFoundError(f"{root} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def require(config: Mapping, keys: Iterable[str], source: str) -> None:
    """A ``ValueError`` naming the first of ``keys`` that ``config`` lacks."""
    for key in keys:
        if key not in config:
            raise ValueError(f"{source} lacks {key!r}")


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
            raise ValueError(f"{origin} lacks {key!r} (for our {ours!r})")
    parts = [state[k] for k in keys]
    if len(parts) == 1:
        return parts[0]
    if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
        shapes = ", ".join(f"{k} {tuple(p.shape)}" for k, p in zip(keys, parts))
        raise ValueError(f"{origin}: cannot concatenate {shapes} into our {ours!r}")
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
        ValueError: a tensor's shape differs (naming our key, their key and both shapes), a key is missing on either
            side, or the checkpoint has keys neither mapped nor ignored.
    """
    targets = _targets(module)
    unmapped = [k for k in targets if k not in key_map]
    if unmapped:
        raise ValueError(f"no checkpoint key mapped to our {unmapped[0]!r} ({len(unmapped)} unmapped in all)")
    for ours, source in key_map.items():
        if ours not in targets:
            raise ValueError(f"the key map names our {ours!r}, which the module does not have")
        tensor = _fetch(state, source, ours, origin)
        target = targets[ours]
        if tensor.shape != target.shape:
            theirs = source if isinstance(source, str) else " + ".join(source)
            raise ValueError(f"{origin}: {theirs!r} has shape {tuple(tensor.shape)} but our {ours!r} has shape "
                             f"{tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensor)
    used = {k for source in key_map.values() for k in ((source,) if isinstance(source, str) else source)}
    patterns = [re.compile(p) for p in ignore]
    unexpected = sorted(k for k in state if k not in used and not any(p.search(k) for p in patterns))
    if unexpected:
        shown = ", ".join(repr(k) for k in unexpected[:5])
        raise ValueError(f"{origin} has {len(unexpected)} unexpected key(s): {shown}"
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


__all__ = ["KeyMap", "Source", "assign", "folder", "gather", "read_config", "read_state", "require"]
