"""The ``kexue`` command end to end, in subprocesses, as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kexue import __version__

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
FAST = ["--trainer.fast_dev_run=2", "--logger", "none"]


def test_tasks_table() -> None:
    proc = kexue("tasks")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["NAME", "SUMMARY", "DISTRIBUTION", "STATUS"]
    assert any(r.startswith("sentiment ") and r.rstrip().endswith("ok") for r in rows)


@pytest.mark.parametrize(("pattern", "names"), [("sent*", ["sentence_similarity", "sentiment"]), ("zzz*", [])])
def test_tasks_pattern(pattern: str, names: list[str]) -> None:
    proc = kexue("tasks", pattern)
    assert proc.returncode == 0, proc.stderr
    if names:
        assert [row.split()[0] for row in proc.stdout.splitlines()[1:]] == names
    else:
        assert proc.stdout.strip() == f"no task matches {pattern!r}"


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


def cli_output(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What ``kexue ARGS`` prints before it exits 0 by SystemExit (--help, --print_config), run in-process: the
    process start-up (torch, Lightning) costs more than these commands."""
    from kexue.platform.cli import main

    with pytest.raises(SystemExit) as stop:
        main(list(args))
    assert stop.value.code in (0, None)
    return capsys.readouterr().out


def test_print_config_shows_every_knob(capsys: pytest.CaptureFixture[str]) -> None:
    out = cli_output(capsys, "run", "sentiment", "--config", "bf16", "--print_config")
    for knob in ("trainer:", "accumulate_grad_batches:", "gradient_clip_val:", "strategy:", "precision: bf16-mixed",
                 "encoder:", "class_path:", "margin: 0.6", "loss: ce", "train_path:", "split_seed:", "ckpt_path:",
                 "optimizer:", "class_path: kexue.platform.loggers.WandbLogger", "seed_everything: 42"):
        assert knob in out, knob


def test_help_lists_task_options(capsys: pytest.CaptureFixture[str]) -> None:
    out = cli_output(capsys, "fit", "sentiment", "--help")
    assert "--model.margin" in out and "--data.train_path" in out and "--trainer.precision" in out


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One short `kexue run sentiment` (CSV logger), shared by the tests of what it prints and writes and of
    `kexue predict` from its checkpoint: its folder and the finished process."""
    workdir = tmp_path_factory.mktemp("sentiment_run")
    proc = kexue("run", "sentiment", "--logger", "csv", "--trainer.max_epochs=1", "--trainer.limit_train_batches=3",
                 "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--data.batch_size=8",
                 cwd=workdir, env={"WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc


def test_run_prints_test_metrics_and_the_best_checkpoint(sentiment_run) -> None:
    workdir, proc = sentiment_run
    metrics = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/acc", "test/f1", "test/loss"} <= metrics.keys()
    assert all(0.0 <= float(metrics[k]) <= 1.0 for k in ("test/acc", "test/f1"))
    best = Path(re.search(r"best checkpoint: (\S+)", proc.stdout).group(1))
    (run_dir,) = (workdir / "runs" / "sentiment").iterdir()
    assert (workdir / best).resolve().parent.parent == run_dir.resolve()  # runs/TASK/<run>/checkpoints/best-*.ckpt


def test_run_writes_config_figures_and_csv_logs_into_its_run_directory(sentiment_run) -> None:
    workdir, proc = sentiment_run
    (run_dir,) = (workdir / "runs" / "sentiment").iterdir()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "figures" / "test_confusion_matrix.png").is_file()
    assert (run_dir / "metrics.csv").is_file() and "CSV logs in" in proc.stderr


def test_predict_from_the_checkpoint_prints_one_line_per_input_line(sentiment_run, tmp_path: Path) -> None:
    workdir, proc = sentiment_run
    best = workdir / re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    texts = tmp_path / "texts.txt"
    texts.write_text("很好用，推荐\n\n太烂了，退货\n", encoding="utf-8")
    pred = kexue("predict", "sentiment", "--ckpt_path", str(best), "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = pred.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "", lines  # one output line per input line, the blank one included
    for line in (lines[0], lines[2]):
        label, prob = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(prob) <= 1.0  # the argmax of two classes


def test_predict_output_follows_the_input_order(sentiment_run, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The same texts in the other order give the same lines in the other order (in-process: the printing is
    the same code)."""
    from kexue.platform.cli import main

    workdir, proc = sentiment_run
    best = str(workdir / re.search(r"best checkpoint: (\S+)", proc.stdout).group(1))
    texts = ["很好用，推荐", "太烂了，退货", "一般般吧", "物流很快，包装完好"]
    outputs = []
    for order in (texts, texts[::-1]):
        (tmp_path / "texts.txt").write_text("\n".join(order) + "\n", encoding="utf-8")
        capsys.readouterr()
        assert main(["predict", "sentiment", "--ckpt_path", best, "--data.predict_path", "texts.txt",
                     "--logger", "none"]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert len(outputs[0]) == len(texts) and outputs[0] != outputs[0][::-1], outputs[0]  # order shows
    assert outputs[1] == outputs[0][::-1]


def test_user_files_replace_embedded_splits(tmp_path: Path) -> None:
    """Training on a 5-row file takes 3 steps an epoch at batch 2; the embedded corpus would take 6,945."""
    from kexue.platform.cli import main

    data = str(FIXTURES / "reviews.tsv")
    assert main(["fit", "sentiment", "--data.train_path", data, "--data.val_path", data, "--data.test_path", data,
                 "--trainer.max_epochs=1", "--data.batch_size=2", "--logger", "none"]) == 0
    (last,) = (tmp_path / "runs" / "sentiment").glob("*/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 3


SHORT = ["--trainer.max_steps=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("logger", ["csv", "none"])
def test_runs_never_overwrite_each_other(logger: str, tmp_path: Path) -> None:
    # In-process (the CLI's own entry function): subprocess start-up costs ~10 s a run on 2 cores.
    from kexue.platform.cli import main

    for _ in range(2):
        assert main(["fit", "sentiment", "--logger", logger, *SHORT]) == 0
    assert len(list((tmp_path / "runs" / "sentiment").glob("*/config.yaml"))) == 2


def test_default_root_dir_decides_where_runs_go(tmp_path: Path) -> None:
    from kexue.platform.cli import main

    assert main(["fit", "sentiment", "--logger", "csv", "--trainer.default_root_dir", "mine", *SHORT]) == 0
    assert len(list((tmp_path / "mine").glob("*/config.yaml"))) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("arg", "expected"), [("--version", f"kexue {__version__}\n"), ("--help", "kexue run TASK")])
def test_python_m_kexue(arg: str, expected: str) -> None:
    proc = kexue(arg)
    assert proc.returncode == 0 and expected in proc.stdout, proc.stdout + proc.stderr


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


def test_predictions_only_keeps_library_output_off_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    """Inside ``predictions_only`` a library's ``print`` and its writes to file descriptor 1 go to stderr; only
    the stream it yields (the prediction writer's) reaches stdout, and both are restored after."""
    import os
    import sys

    from kexue.platform.stdout import predictions_only

    with predictions_only() as stream:
        print("a library's print")
        os.write(1, b"a C library's write\n")
        stream.write("the prediction\n")
    print("after")
    out, err = capfd.readouterr()
    assert out == "the prediction\nafter\n" and "a library's print" in err and "a C library's write" in err
    assert sys.stdout is not sys.stderr
