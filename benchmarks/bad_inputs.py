"""Count the bad-input catalogue: every row of tests/test_bad_inputs.py run as a real ``kexue`` process.

A row is handled cleanly when the process exits 2, prints no traceback, and its last stderr line is
``kexue: error: ...`` holding every expected fragment. Usage: python benchmarks/bad_inputs.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import ROOT, machine, write_section
from kexue.tests.test_bad_inputs import CATALOGUE, make_files


def run_row(argv: list[str], fragments: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        make_files(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "site"), "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", "kexue", *argv], cwd=tmp, env=env, capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    ok = (proc.returncode == 2 and "Traceback" not in proc.stderr and last.startswith("kexue: error: ")
          and all(f in last for f in fragments))
    return ok, last if ok else f"exit {proc.returncode}: {last}"


# The cases of issue 15 that are not bad input: each is a test; a case is clean when its test passes.
BEHAVIOURS: dict[str, list[str]] = {
    "results that were silently wrong": [
        "tests/test_reliability.py::test_a_second_fast_dev_run_starts_fresh",
        "tests/test_reliability.py::test_untrained_is_an_explicit_opt_in",
        "tests/test_cli.py::test_predict_from_the_checkpoint_prints_one_line_per_input_line",
        "tests/test_faults.py::test_resume_from_a_step_checkpoint_and_from_interrupted",
        "tests/test_reliability.py::test_default_root_dir_decides_where_runs_go",
        "tests/test_reliability.py::test_a_task_without_modelcheckpoint_tests_its_best_epoch",
        "tests/test_text_similarity.py::test_non_finite_score_is_refused_with_its_line",
        "tests/test_sentence_similarity.py::test_split_without_retrievable_pair_is_refused",
        "tests/test_word_vectors.py::test_empty_paths_list_is_refused_in_one_line",
        "tests/test_corpus.py::test_bad_byte_names_its_line_in_the_whole_file_whatever_the_sharding",
        "tests/test_crf.py",
    ],
    "bugs in code (exit 1, traceback saved)": [
        "tests/test_reliability.py::test_a_bug_during_training_is_exit_1_with_a_saved_traceback",
    ],
    "kills and signals": [
        "tests/test_faults.py::test_kill_9_then_resume_from_last_equals_an_uninterrupted_run",
        "tests/test_faults.py::test_sigterm_and_ctrl_c_save_a_checkpoint_and_exit_cleanly",
        "tests/test_faults.py::test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_whole",
    ],
    "W&B without network": [
        "tests/test_faults.py::test_wandb_misconfigured_falls_back_to_csv",
        "tests/test_reliability.py::test_wandb_online_says_at_once_that_it_tries",
        "tests/test_wandb.py",
    ],
    "distributed correctness": [
        "tests/test_metrics_ddp.py",
        "tests/test_scale.py::test_predict_under_ddp_prints_once_in_input_order",
        "tests/test_scale.py::test_resume_under_ddp_goes_on_from_the_saved_step",
        "tests/test_scale.py::test_ddp_shards_each_epoch_without_repeats",
    ],
    "plugin isolation": [
        "tests/test_registry.py",
    ],
}


def run_behaviour(node: str) -> bool:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return proc.returncode == 0


def main() -> None:
    start = time.perf_counter()
    results = [(category, name, *run_row(argv, fragments))
               for category, rows in CATALOGUE.items() for name, argv, fragments in rows]
    clean = sum(ok for *_, ok, _ in results)
    by_category = "\n".join(
        f"| {category} | {sum(1 for c, *_ in results if c == category)} | "
        f"{sum(ok for c, _, ok, _ in results if c == category)} |" for category in CATALOGUE)
    rows = "\n".join(f"| {category} | {name} | {'yes' if ok else 'NO'} | `{line.replace('|', '/')[:150]}` |"
                     for category, name, ok, line in results)
    behaviours = [(category, node, run_behaviour(node)) for category, nodes in BEHAVIOURS.items() for node in nodes]
    behaviour_rows = "\n".join(
        f"| {category} | {sum(1 for c, *_ in behaviours if c == category)} | "
        f"{sum(ok for c, _, ok in behaviours if c == category)} |" for category in BEHAVIOURS)
    failing = [node for _, node, ok in behaviours if not ok]
    write_section("bad_inputs", f"""## Bad input catalogue

`python benchmarks/bad_inputs.py` runs every row of `tests/test_bad_inputs.py` as a real `kexue` process
({time.perf_counter() - start:.0f} s; {machine()}). **Bad inputs tried / handled cleanly: {len(results)} / {clean}**
(clean = exit status 2, no traceback, one `kexue: error:` line naming what and where).

| category | tried | clean |
|---|---:|---:|
{by_category}

The other cases of the reliability issue are tests (a case is clean when its test passes); the same run:
**cases tried / clean: {len(behaviours)} / {sum(ok for *_, ok in behaviours)}**{"; failing: " + ", ".join(failing) if failing else ""}.

| category | tests tried | clean |
|---|---:|---:|
{behaviour_rows}

| category | input | clean | what the user sees |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()
