"""The ``kexue`` command end to end, in subprocesses, as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
FAST = ["--trainer.fast_dev_run=2", "--logger", "none"]


def test_tasks_table_and_pattern() -> None:
    proc = kexue("tasks")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["NAME", "SUMMARY", "DISTRIBUTION", "STATUS"]
    assert any(r.startswith("sentiment ") and r.rstrip().endswith("ok") for r in rows)
    assert "sentiment" in kexue("tasks", "sent*").stdout
    assert "no task matches" in kexue("tasks", "zzz*").stdout


def test_tasks_does_not_import_torch() -> None:
    code = "import sys; from kexue.platform.cli import main; main(['tasks']); print('torch' in sys.modules, 'lightning' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False False", proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args, fragments",
    [  # the full catalogue runs in-process in test_bad_inputs.py; these go through a real process
        (["run", "nope"], ["unknown task 'nope'"]),
        (["fit", "sentiment", "--model.lrr", "1"], ["did you mean --model.lr?"]),
        (["fit", "sentiment", "--data.train_path", str(FIXTURES / "reviews_bad.tsv"), *FAST], ["reviews_bad.tsv:2:", "no tab"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(kexue(*args), *fragments)


def test_print_config_shows_every_knob() -> None:
    proc = kexue("run", "sentiment", "--config", "bf16", "--print_config")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for knob in ("trainer:", "accumulate_grad_batches:", "gradient_clip_val:", "strategy:", "precision: bf16-mixed",
                 "encoder:", "class_path:", "margin: 0.6", "loss: ce", "train_path:", "split_seed:", "ckpt_path:",
                 "optimizer:", "class_path: kexue.platform.loggers.WandbLogger", "seed_everything: 42"):
        assert knob in out, knob


def test_help_lists_task_options() -> None:
    proc = kexue("fit", "sentiment", "--help")
    assert proc.returncode == 0
    assert "--model.margin" in proc.stdout and "--data.train_path" in proc.stdout and "--trainer.precision" in proc.stdout


def test_run_then_predict_from_checkpoint(tmp_path: Path) -> None:
    proc = kexue("run", "sentiment", "--logger", "csv", "--trainer.max_epochs=1", "--trainer.limit_train_batches=3",
                 "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--data.batch_size=8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/acc", "test/f1", "test/loss"} <= metrics.keys()
    best = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    (run_dir,) = (tmp_path / "runs" / "sentiment").iterdir()
    assert Path(best).resolve().parent.parent == run_dir.resolve()  # runs/TASK/<run>/checkpoints/best-*.ckpt
    assert (run_dir / "config.yaml").is_file() and (run_dir / "figures" / "test_confusion_matrix.png").is_file()
    assert (run_dir / "metrics.csv").is_file() and "CSV logs in" in proc.stderr

    texts = tmp_path / "texts.txt"
    texts.write_text("很好用，推荐\n\n太烂了\n", encoding="utf-8")
    pred = kexue("predict", "sentiment", "--ckpt_path", best, "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = pred.stdout.splitlines()
    assert len(lines) == 3, lines  # one output line per input line, the blank one included
    for line in (lines[0], lines[2]):
        label, prob = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(prob) <= 1.0


def test_user_files_replace_embedded_splits(tmp_path: Path) -> None:
    """Training on a 5-row file takes 3 steps an epoch at batch 2; the embedded corpus would take 6,945."""
    data = str(FIXTURES / "reviews.tsv")
    proc = kexue("fit", "sentiment", "--data.train_path", data, "--data.val_path", data, "--data.test_path", data,
                 "--trainer.max_epochs=1", "--data.batch_size=2", "--logger", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (last,) = (tmp_path / "runs" / "sentiment").glob("*/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 3


def test_runs_never_overwrite_each_other(tmp_path: Path) -> None:
    # In-process (the CLI's own entry function): the subprocess start-up of four runs cost ~1 min of suite time.
    from kexue.platform.cli import main

    short = ["--trainer.max_steps=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    for logger in ("csv", "csv", "none", "none"):
        assert main(["fit", "sentiment", "--logger", logger, *short]) == 0
    assert len(list((tmp_path / "runs" / "sentiment").glob("*/config.yaml"))) == 4
    assert main(["fit", "sentiment", "--logger", "csv", "--trainer.default_root_dir", "mine", *short]) == 0
    assert len(list((tmp_path / "mine").glob("*/config.yaml"))) == 1  # --trainer.default_root_dir decides


def test_python_m_kexue_and_version() -> None:
    proc = kexue("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kexue ")
    assert "kexue run TASK" in kexue("--help").stdout


def test_ddp_is_one_flag(tmp_path: Path) -> None:
    """`kexue run` under 2-process DDP: one run directory for both ranks (the children inherit rank 0's), the best
    checkpoint written once and tested, the test figure saved (no rank-0-only collective)."""
    proc = kexue("run", "sentiment", "--config", "ddp", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
                 "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
                 "--data.batch_size=8", "--logger", "csv", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr and "test/acc" in proc.stdout
    (run_dir,) = (tmp_path / "runs" / "sentiment").iterdir()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["best-0.ckpt", "last.ckpt"]  # written once, by rank 0
    assert (run_dir / "figures" / "test_confusion_matrix.png").is_file()
