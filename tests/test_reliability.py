"""Issue 15's platform cases: a run resumes only when asked, the error boundary's two exits, Lightning's own
flags honoured. Real processes where the exit status or stderr is the point, in-process otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kexue.platform.cli import main

from .conftest import kexue

SHORT = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]


def test_a_second_fast_dev_run_starts_fresh(tmp_path: Path) -> None:
    """Lightning turns fit(ckpt_path=None) into "last" when an OnExceptionCheckpoint is present; kexue's
    interrupt checkpoint is not one, and every run has its own directory, so nothing is resumed unasked."""
    first = kexue("fit", "sentiment", "--logger", "none", *SHORT)
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(tmp_path.glob("runs/sentiment/*/checkpoints/last.ckpt"))
    for _ in range(2):
        again = kexue("run", "sentiment", "--trainer.fast_dev_run", "true", "--logger", "none")
        assert again.returncode == 0, again.stderr[-2000:]
        assert "Restoring states" not in again.stderr, again.stderr[-2000:]


def test_a_bug_during_training_is_exit_1_with_a_saved_traceback(tmp_path: Path) -> None:
    proc = kexue("fit", "sentiment", "--logger", "none", *SHORT,
                 "--trainer.callbacks+=kexue.tests.helpers.FailInTraining")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kexue: error: RuntimeError: a bug in the training code") and "error.log" in last
    (log,) = tmp_path.glob("runs/sentiment/*/error.log")
    assert "Traceback" in log.read_text() and "helpers.py" in log.read_text()
    debug = kexue("fit", "sentiment", "--logger", "none", *SHORT, "--debug",
                  "--trainer.callbacks+=kexue.tests.helpers.FailInTraining")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_untrained_is_an_explicit_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("好\n", encoding="utf-8")
    assert main(["predict", "sentiment", "--data.predict_path", str(texts), "--logger", "none"]) == 2
    assert "needs --ckpt_path" in capsys.readouterr().err
    assert main(["predict", "sentiment", "--data.predict_path", str(texts), "--logger", "none",
                 "--untrained", "true"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_default_root_dir_decides_where_runs_go(tmp_path: Path) -> None:
    assert main(["fit", "sentiment", "--logger", "csv", "--trainer.default_root_dir", "elsewhere", *SHORT]) == 0
    assert not (tmp_path / "runs").exists()
    (run,) = (tmp_path / "elsewhere").iterdir()
    assert {"config.yaml", "hparams.yaml", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert main(["fit", "sentiment", "--logger", "none", "--trainer.default_root_dir", "elsewhere", *SHORT,
                 "--ckpt_path", "last", "--trainer.max_steps=3"]) == 0
    assert len(list((tmp_path / "elsewhere").iterdir())) == 2  # the resumed run wrote a new directory
    newest = max((tmp_path / "elsewhere").glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert torch.load(newest, weights_only=True)["global_step"] == 3


def test_a_task_without_modelcheckpoint_tests_its_best_epoch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`kexue run` keeps and tests the best checkpoint by the val/ twin of Task.metric when the YAML sets no
    ModelCheckpoint (here: the callbacks list emptied on the command line)."""
    assert main(["run", "sentiment", "--logger", "none", "--trainer.callbacks=[]", "--trainer.max_epochs=2",
                 "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2",
                 "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false"]) == 0
    out = capsys.readouterr().out
    best = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("best checkpoint: "))
    checkpoint = torch.load(best, weights_only=True)
    state = next(v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint{'monitor': 'val/acc'"))
    assert state["best_model_path"] == best


def test_wandb_online_says_at_once_that_it_tries(tmp_path: Path) -> None:
    env = {"WANDB_MODE": "online", "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    proc = kexue("fit", "sentiment", *SHORT, "--trainer.logger.init_args.init_timeout", "5", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    trying = next(i for i, line in enumerate(lines) if line.startswith("kexue: connecting to W&B"))
    unavailable = next(i for i, line in enumerate(lines) if line.startswith("kexue: warning: W&B unavailable"))
    assert trying < unavailable and "after 5 s" in lines[trying]


def test_a_checkpoint_that_does_not_load_under_fit_is_named_as_the_checkpoint() -> None:
    """Under ``fit`` Lightning sets ``trainer.ckpt_path`` only after the callbacks' setup, so the boundary's phase
    takes the CLI's word that a checkpoint was given: a state_dict mismatch reads "cannot load the checkpoint",
    not "cannot prepare the data"."""
    from types import SimpleNamespace

    from kexue.platform.boundary import Phase

    fitting = SimpleNamespace(ckpt_path=None)
    given, none = Phase(checkpoint=True), Phase()
    given.setup(fitting, None, "fit")
    none.setup(fitting, None, "fit")
    assert (given.what, none.what) == ("cannot load the checkpoint", "cannot prepare the data")
