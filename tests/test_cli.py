"""The ``kexue`` command end to end, in subprocesses, as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    proc = kexue("run", "sentiment", "--config", "bf16", "--model.encoder", "cnn", "--print_config")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for knob in ("trainer:", "accumulate_grad_batches:", "gradient_clip_val:", "strategy:", "precision: bf16-mixed",
                 "encoder: cnn", "margin: 0.6", "loss: ce", "train_path:", "split_seed:", "ckpt_path:",
                 "optimizer:", "class_path: kexue.platform.loggers.WandbLogger", "seed_everything: 42"):
        assert knob in out, knob


def test_help_lists_task_options() -> None:
    proc = kexue("fit", "sentiment", "--help")
    assert proc.returncode == 0
    assert "--model.margin" in proc.stdout and "--data.train_path" in proc.stdout and "--trainer.precision" in proc.stdout


def test_run_then_predict_from_checkpoint(tmp_path: Path) -> None:
    proc = kexue("run", "sentiment", "--logger", "csv", "--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2",
                 "--trainer.limit_test_batches=2", "--data.batch_size=8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/acc", "test/f1", "test/loss"} <= metrics.keys()
    assert 0.0 <= float(metrics["test/acc"]) <= 1.0
    best = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    run_dir = tmp_path / "runs" / "sentiment" / "version_0"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "figures" / "test_confusion_matrix.png").is_file()
    assert "CSV logs in" in proc.stderr

    texts = tmp_path / "texts.txt"
    texts.write_text("很好用，推荐\n\n太烂了\n", encoding="utf-8")
    # The checkpoint fixes the architecture: a different --model.embed_dim must not break loading.
    pred = kexue("predict", "sentiment", "--ckpt_path", best, "--data.predict_path", str(texts),
                 "--model.embed_dim", "8", "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = [line for line in pred.stdout.splitlines() if "\t" in line]
    assert len(lines) == 2
    for line in lines:
        label, prob = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(prob) <= 1.0


def test_user_files_replace_embedded_splits(tmp_path: Path) -> None:
    data = str(FIXTURES / "reviews.tsv")
    proc = kexue("run", "sentiment", "--data.train_path", data, "--data.val_path", data, "--data.test_path", data,
                 "--trainer.max_epochs=1", "--logger", "none", "--trainer.enable_checkpointing=false",
                 "--trainer.callbacks=[]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/acc" in proc.stdout


def test_runs_never_overwrite_each_other(tmp_path: Path) -> None:
    # In-process (the CLI's own entry function): the subprocess start-up of four runs cost ~1 min of suite time.
    from kexue.platform.cli import main

    short = ["--trainer.max_steps=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    for _ in range(2):
        assert main(["fit", "sentiment", "--logger", "csv", *short]) == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "sentiment").iterdir()) == ["version_0", "version_1"]
    for _ in range(2):  # without a logger to version runs, each still gets its own directory
        assert main(["fit", "sentiment", "--logger", "none", *short]) == 0
    assert len(list((tmp_path / "runs" / "sentiment").glob("*/config.yaml"))) == 4


def test_python_m_kexue_and_version() -> None:
    proc = kexue("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kexue ")
    assert "kexue run TASK" in kexue("--help").stdout


def test_tasks_startup_is_light() -> None:
    """A smoke bound only; the measured ratio against `import torch` lives in BENCHMARKS.md."""
    start = time.perf_counter()
    assert kexue("tasks").returncode == 0
    assert time.perf_counter() - start < 10


def test_ddp_is_one_flag(tmp_path: Path) -> None:
    proc = kexue("fit", "sentiment", "--config", "ddp", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
                 "--trainer.limit_train_batches=2",
                 "--trainer.limit_val_batches=1", "--data.batch_size=8", "--logger", "csv", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr
    checkpoints = sorted(p.name for p in (tmp_path / "runs" / "sentiment" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["best-0.ckpt", "last.ckpt"]  # written once, by rank 0
