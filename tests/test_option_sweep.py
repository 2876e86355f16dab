"""The option sweep (issue 29, item 1): every registered task's model and data options, as the CLI parses them,
get boundary values (0, -1, huge, wrong type, empty, a missing path, a directory, a binary file, a wrong choice);
each run must end with exit 0 and test metrics, or exit 2 and one ``kexue: error:`` line naming the option — never
exit 1, never a traceback.

The whole table (every option x every value, about 2,000 runs) is ``benchmarks/option_sweep.py``; ``--sample`` runs
one value per option (546 runs). Here each task runs ``PER_TASK`` of those, picked by a stable hash, so the suite
stays inside its time budget and every task's signature is walked on every run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.platform.boundary import given_options, name_options
from kexue.platform.options import flatten_parser_keys
from kexue.registry import list_tasks

from .sweep import Option, boundary_values, cases, kind, run_case, sample, task_options, verdict
from .test_every_task import needs_asset

TASKS = [entry.name for entry in list_tasks() if entry.status == "ok"]
PER_TASK = 2
KEPT = ("ok", "refused", "hinted")  # hinted: the boundary names the user's option, the check did not


def test_options_are_listed_through_nested_dataclasses_and_components() -> None:
    options = {o.key: o for o in task_options("language_model")}
    assert kind(options["model.generation.top_k"]) == "int"  # a config dataclass of the LightningModule
    assert kind(options["model.net.init_args.config.dim"]) == "int"  # a dataclass inside a component's init_args
    assert kind(options["model.net.init_args.config.positions"]) == "literal"
    assert kind(options["data.tokenizer.init_args.min_count"]) == "int"  # the DataModule's tokenizer component
    assert kind(options["data.train_path"]) == "path"
    assert "model.net.class_path" not in options
    assert kind(Option("data.split", tuple[float, float, float], (0.9, 0.05, 0.05))) == "list"


def test_boundary_values_cover_each_kind(tmp_path: Path) -> None:
    labels = lambda option: [label for label, _ in boundary_values(option, tmp_path)]  # noqa: E731
    assert labels(Option("model.dim", int, 8)) == ["zero", "negative", "huge", "wrong type"]
    assert labels(Option("data.train_path", str | None, None)) == ["empty", "missing path", "directory", "binary file"]
    values = dict(boundary_values(Option("data.train_path", str | None, None), tmp_path))
    assert Path(values["directory"]).is_dir() and b"\x00" in Path(values["binary file"]).read_bytes()
    assert not Path(values["missing path"]).exists()


def test_a_line_names_the_users_option_by_its_leaf_its_component_or_a_hint() -> None:
    given = given_options(["--model.net.init_args.dim=0", "--data.batch_size", "4", "--trainer.max_epochs", "1"])
    assert given == {"model.net.init_args.dim": "0", "data.batch_size": "4"}
    assert name_options("dim must be >= 1, got 0", given).startswith("--model.net.init_args.dim=0: ")
    assert name_options("model.net has a weight of shape (0, 4)", given).startswith("--model.net.init_args.dim=0: ")
    assert name_options("--data.batch_size must be >= 1", given) == "--data.batch_size must be >= 1"
    assert name_options("pool must be 'max' or 'mean', got 'nope'", {"model.encoder.init_args.pool": "nope"}) == (
        "--model.encoder.init_args.pool=nope: pool must be 'max' or 'mean', got 'nope'")  # a word is no file name
    hinted = name_options("cannot allocate memory", given)
    assert hinted.endswith("[you set --model.net.init_args.dim=0 --data.batch_size=4]")
    assert verdict(2, "", f"kexue: error: {hinted}", "model.net.init_args.dim") == "hinted"
    assert verdict(2, "", "kexue: error: cannot allocate memory", "model.net.init_args.dim") == "unnamed"
    assert verdict(1, "", "kexue: error: boom (an error in the code)", "model.net.init_args.dim") == "exit 1"


def test_a_components_parse_error_names_the_option_a_user_types() -> None:
    message = ("Parser key \"model.encoder\": Problem with given class_path 'kexue.nn.CharConvEncoder': Parser key "
               "\"embed_dim\": Expected a <class 'int'>. Got value: x")
    assert flatten_parser_keys(message) == ("Parser key \"model.encoder.embed_dim\" (kexue.nn.CharConvEncoder): "
                                            "Expected a <class 'int'>. Got value: x")


@pytest.mark.parametrize("name", TASKS)
def test_boundary_values_end_in_exit_0_or_one_line_naming_the_option(name: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    needs_asset(name)
    picked = sample(cases(name, tmp_path / "scratch"), name)
    picked = sorted(picked, key=lambda case: _rank(name, case[0].key))[:PER_TASK]
    for option, label, value in picked:
        status, out, err = run_case(name, option, value, str(tmp_path / "runs"), timeout=120)
        result = verdict(status, out, err, option.key, value)
        assert result in KEPT, (f"{option.flag}={value!r} ({label}): {result}", err.strip().splitlines()[-1:])


def _rank(task: str, key: str) -> int:
    import hashlib

    return int(hashlib.sha256(f"pick:{task}:{key}".encode()).hexdigest(), 16)
