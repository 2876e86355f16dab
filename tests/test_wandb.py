"""W&B with no account: the default logger runs offline, logs config and figures, and says how to sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.platform.loggers import wandb_credentials_found

from .conftest import kexue


def test_credentials_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_credentials_found()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / "netrc").chmod(0o600)
    assert wandb_credentials_found()
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_credentials_found()


def test_default_logger_goes_offline_without_credentials(tmp_path: Path) -> None:
    env = {"WANDB_MODE": None, "HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc"), "WANDB_API_KEY": None,
           "WANDB_DIR": None, "WANDB_SILENT": "true"}
    proc = kexue("run", "sentiment", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                 "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1", "--data.batch_size=8", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "sentiment").iterdir()
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert f"wandb sync {offline.relative_to(tmp_path)}" in proc.stderr
    assert (run_dir / "config.yaml").is_file()  # the resolved config, beside the W&B run
    assert (run_dir / "figures" / "test_confusion_matrix.png").is_file()
    # What `wandb sync` uploads: the run file holds the full resolved config (model, data and trainer).
    (run_file,) = offline.glob("run-*.wandb")
    records = run_file.read_bytes()
    assert b"margin" in records and b"accumulate_grad_batches" in records and b"split_seed" in records
    assert list(offline.glob("files/media/images/test/confusion_matrix*.png"))
