"""Run directories (issue 29, item 6): a refused command leaves ``runs/`` as it found it (W&B's offline run folder
included); a run that trained keeps its folder; a bug after the first batch keeps its ``error.log``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.lightning_modules.flow import FlowModel
from kexue.platform import loggers
from kexue.platform.cli import main

TINY = ["--model.net.num_blocks", "1", "--model.net.hidden", "8", "--model.num_samples", "0", "--trainer.enable_progress_bar=false"]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def test_refused_commands_leave_runs_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    discarded: list[set[str]] = []  # what each refused run directory held when it was taken back
    discard = loggers.RunDirectory.discard

    def spy(self: loggers.RunDirectory) -> bool:
        discarded.append(tree(Path(self.path)) if self.path else set())
        return discard(self)

    monkeypatch.setattr(loggers.RunDirectory, "discard", spy)
    runs = tmp_path / "runs"
    assert main(["fit", "flow", "--model.net.lipschitz", "1.0", *TINY]) == 2  # a first command, refused: no runs/
    assert not runs.exists() and discarded == [set()]
    assert main(["fit", "flow", *TINY, "--logger", "csv", "--trainer.max_steps=1", "--trainer.limit_val_batches=1",
                 "--trainer.num_sanity_val_steps=0"]) == 0
    before = tree(runs)
    ckpt = next(runs.rglob("last.ckpt"))  # the run that trained keeps its folder
    monkeypatch.setenv("WANDB_MODE", "offline")  # the default logger, writing its run folder into the run directory
    refusals = [
        ["fit", "flow", "--model.net.lipschitz", "1.5", *TINY],  # a bad option
        ["fit", "flow", "--data.train_path", "missing.csv", *TINY],  # a missing file
        ["fit", "flow", "--ckpt_path", str(ckpt), *TINY, "--model.net.hidden", "16"],  # after W&B's run started
    ]
    for argv in refusals:
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("kexue: error: ")
        assert tree(runs) == before, argv
    assert any(name.startswith("wandb/offline-run-") for name in discarded[-1])  # the last one was not empty


def test_a_bug_keeps_its_error_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: FlowModel, batch: object, batch_idx: int) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(FlowModel, "training_step", broken)
    assert main(["fit", "flow", *TINY, "--logger", "none", "--trainer.max_steps=1"]) == 1
    (log,) = (tmp_path / "runs").rglob("error.log")
    assert "a bug" in log.read_text(encoding="utf-8")
