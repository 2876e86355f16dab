"""Faults a long run meets: kill -9 and resume, a kill while a checkpoint is written, SIGTERM/Ctrl-C,
W&B that cannot start, and checkpoints that carry code. Real subprocesses on the real ``sentiment`` task."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import kexue

# 5 short epochs; last.ckpt only after each validation, so a resume starts exactly at an epoch boundary.
SHORT = ["--trainer.max_epochs=5", "--trainer.limit_train_batches=10", "--trainer.limit_val_batches=4",
         "--trainer.deterministic=true", "--checkpoint_every_n_steps=0", "--logger", "csv"]


def popen_kexue(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "kexue", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    """The first file matching ``pattern`` under ``root`` once it exists (fails if ``proc`` ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, f"run ended before {pattern} appeared: {proc.communicate()[1][-2000:]}"
        time.sleep(0.02)
    raise AssertionError(f"no {pattern} after {timeout} s")


def final_val(version_dir: Path) -> dict[str, float]:
    """The last logged val/* metrics and the epoch they belong to, from the CSV logger."""
    rows = [r for r in csv.DictReader((version_dir / "metrics.csv").open()) if r.get("val/acc")]
    return {"epoch": float(rows[-1]["epoch"]), "val/acc": float(rows[-1]["val/acc"]),
            "val/loss": float(rows[-1]["val/loss"]), "first_epoch": float(rows[0]["epoch"])}


def run_dir(root: Path) -> Path:
    """The one run directory under ``root`` (each run gets a fresh one under --trainer.default_root_dir)."""
    (found,) = [p for p in root.iterdir() if p.is_dir()]
    return found


def test_kill_9_then_resume_from_last_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = kexue("fit", "sentiment", *SHORT, "--trainer.default_root_dir", "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]

    proc = popen_kexue("fit", "sentiment", *SHORT, "--trainer.default_root_dir", "killed")
    saved = wait_for("killed/*/checkpoints/last.ckpt", tmp_path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL  # it was killed mid-training, not finished

    resumed = kexue("fit", "sentiment", *SHORT, "--trainer.default_root_dir", "resumed",
                    "--ckpt_path", str(saved))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert str(saved.relative_to(tmp_path)) in resumed.stderr  # "Restoring states from ..."
    ref, got = final_val(run_dir(tmp_path / "whole")), final_val(run_dir(tmp_path / "resumed"))
    assert got["first_epoch"] >= 1  # continued from the saved epoch, did not start over
    assert got["epoch"] == ref["epoch"] == 4
    assert got["val/acc"] == ref["val/acc"]
    assert got["val/loss"] == pytest.approx(ref["val/loss"], abs=1e-6)


def test_resume_from_a_step_checkpoint_and_from_interrupted(tmp_path: Path) -> None:
    """A mid-epoch step checkpoint restores weights, optimizer and the step count; `--ckpt_path last` takes
    interrupted.ckpt when it is newer than last.ckpt (Ctrl-C after the last step save)."""
    proc = popen_kexue("fit", "sentiment", "--trainer.max_epochs=50", "--trainer.limit_val_batches=2",
                       "--checkpoint_every_n_steps=3", "--logger", "csv", "--trainer.default_root_dir", "r")
    last = wait_for("r/*/checkpoints/last.ckpt", tmp_path, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    interrupted = last.parent / "interrupted.ckpt"
    step = torch.load(interrupted, weights_only=True)["global_step"]
    assert step >= torch.load(last, weights_only=True)["global_step"] >= 3  # interrupted.ckpt is the newer file
    resumed = kexue("fit", "sentiment", "--trainer.max_steps", str(step + 2), "--trainer.limit_val_batches=1",
                    "--logger", "csv", "--trainer.default_root_dir", "r", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "interrupted.ckpt" in resumed.stderr  # Lightning's "Restoring states from .../interrupted.ckpt"
    newest = max((tmp_path / "r").glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert torch.load(newest, weights_only=True)["global_step"] == step + 2  # went on from the saved step


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_save_a_checkpoint_and_exit_cleanly(tmp_path: Path, sig: int, status: int) -> None:
    proc = popen_kexue("fit", "sentiment", "--trainer.max_epochs=50", "--trainer.limit_val_batches=2",
                       "--checkpoint_every_n_steps=5", "--logger", "csv")
    last = wait_for("runs/sentiment/*/checkpoints/last.ckpt", tmp_path, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    saved = last.parent / "interrupted.ckpt"
    assert f"checkpoint saved on interrupt: {saved.relative_to(tmp_path)}" in out + err
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["kexue"]["task"] == "sentiment" and checkpoint["global_step"] >= 5


KILL_DURING_WRITE = """
import os, signal, sys, torch
import kexue.platform.reliability as reliability

io, path = reliability.AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"state_dict": {"w": torch.zeros(4)}, "n": 1}, path)  # the good one

def write_half_then_die(f, data):
    f.write(data[: len(data) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

reliability._write = write_half_then_die
io.save_checkpoint({"state_dict": {"w": torch.ones(4)}, "n": 2}, path)  # killed half-way through
"""


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, str(path)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (partial,) = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]  # killed mid-write indeed
    assert 0 < partial.stat().st_size < path.stat().st_size
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["n"] == 1 and torch.equal(checkpoint["state_dict"]["w"], torch.zeros(4))


def test_the_cli_writes_checkpoints_atomically(tmp_path: Path) -> None:
    from kexue.platform.cli import main

    assert main(["fit", "sentiment", "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--logger", "none",
                 "--trainer.callbacks+=kexue.tests.helpers.RecordCheckpointIO"]) == 0
    assert (tmp_path / "checkpoint_io.txt").read_text() == "AtomicCheckpointIO"


def test_wandb_misconfigured_falls_back_to_csv(tmp_path: Path) -> None:
    env = {"WANDB_MODE": "online", "WANDB_API_KEY": "badkey", "WANDB_BASE_URL": "http://127.0.0.1:9"}
    proc = kexue("fit", "sentiment", "--trainer.max_epochs=1", "--trainer.limit_train_batches=3",
                 "--trainer.limit_val_batches=2", "--trainer.log_every_n_steps=1", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warning = [line for line in proc.stderr.splitlines() if line.startswith("kexue: warning: W&B unavailable")]
    assert len(warning) == 1 and "metrics.csv" in warning[0]
    (metrics,) = (tmp_path / "runs" / "sentiment").glob("*/metrics.csv")
    text = metrics.read_text()
    assert "val/acc" in text and "train/loss" in text
    assert (metrics.parent / "hparams.yaml").is_file()


class Payload:
    def __reduce__(self):  # runs at unpickling time if the loader allows arbitrary pickles
        return (os.system, ("touch pwned",))


def test_checkpoints_load_weights_only_and_never_run_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: a pickle that ran would run here just the same (os.system in this test's folder), and the
    # process start-up would cost more than the check. fit and predict read checkpoints through the same
    # read_checkpoint.
    from kexue.platform.cli import main

    torch.save({"state_dict": {}, "evil": Payload()}, tmp_path / "evil.ckpt")
    assert main(["test", "sentiment", "--ckpt_path", "evil.ckpt", "--logger", "none"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("kexue: error: ") and "evil.ckpt" in last and "cannot read checkpoint" in last, last
    assert not (tmp_path / "pwned").exists()
