"""The DataModules' shared arguments (the split files, ``split``, ``split_seed``, ``batch_size``, ``num_workers``) are
declared once, in :mod:`kexue.data.datamodule`'s bases, and reach every task through ``**kwargs``: jsonargparse
offers them (what ``--help`` / ``--print_config`` show), ``save_hyperparameters`` records them (what a checkpoint
keeps), the bases check them, and a task whose default differs keeps its own."""

from __future__ import annotations

import pytest
from jsonargparse import ArgumentParser

from kexue.data.datamodule import BatchedDataModule, SplitDataModule
from kexue.registry import list_tasks

TASKS = {entry.name: entry.task for entry in list_tasks() if entry.status == "ok"}
DATA = {name: task.datamodule_class() for name, task in TASKS.items()}
BATCHED = sorted(name for name, cls in DATA.items() if issubclass(cls, BatchedDataModule))
LOADER_ARGS = ("split_seed", "batch_size", "num_workers")
SPLIT_ARGS = ("train_path", "val_path", "test_path", "predict_path", "split")

# The tasks' defaults that are not the bases' (batch_size 32, split 0.8/0.1/0.1), as they were when each DataModule
# still declared its own: moving the declaration must not move a task's default.
OWN_DEFAULTS = {
    "sentiment": {"batch_size": 64}, "multilabel": {"batch_size": 64}, "cws": {"batch_size": 64},
    "ner": {"batch_size": 64}, "word_discovery": {"batch_size": 64}, "sentence_similarity": {"batch_size": 128},
    "spectra": {"batch_size": 8}, "flow": {"batch_size": 64}, "gan": {"batch_size": 64},
    "gan_vae": {"batch_size": 64}, "vq_vae": {"batch_size": 64},
    "language_model": {"split": [0.9, 0.05, 0.05]}, "pretrain": {"split": [0.98, 0.01, 0.01]},
}


def shared_names(cls: type) -> tuple[str, ...]:
    return LOADER_ARGS + (SPLIT_ARGS if issubclass(cls, SplitDataModule) else ())


def parser_defaults(cls: type) -> dict:
    """What jsonargparse (hence LightningCLI) offers for ``cls``, with its defaults."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data")
    return parser.get_defaults().data.as_dict()


def plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def test_the_bases_serve_the_tasks_that_share_the_arguments() -> None:
    # Guards the loops below against checking nothing; the word-vector tasks and text_similarity take other
    # arguments (no split, no files, a batch of co-occurrences) and stay outside.
    assert {n for n in BATCHED if issubclass(DATA[n], SplitDataModule)} >= {
        "sentiment", "multilabel", "cws", "ner", "word_discovery", "cond_lm", "language_model", "pretrain",
        "reading_comprehension", "relation_extraction", "sentence_similarity"}
    assert {"spectra", "flow", "gan", "gan_vae", "vq_vae"} <= set(BATCHED)


@pytest.mark.parametrize("name", BATCHED)
def test_shared_arguments_are_offered_recorded_and_keep_the_task_default(name: str) -> None:
    cls = DATA[name]
    offered, recorded = parser_defaults(cls), dict(cls().hparams)
    expected = {"split_seed": 0, "batch_size": 32, "num_workers": 0, "train_path": None, "val_path": None,
                "test_path": None, "predict_path": None, "split": [0.8, 0.1, 0.1], **OWN_DEFAULTS.get(name, {})}
    for key in shared_names(cls):
        assert plain(offered[key]) == expected[key], (name, key, "--print_config")
        assert plain(recorded[key]) == expected[key], (name, key, "hparams")
    changed = dict(cls(split_seed=3, batch_size=5, num_workers=1).hparams)
    assert (changed["split_seed"], changed["batch_size"], changed["num_workers"]) == (3, 5, 1)
    assert set(recorded) == set(offered), name  # a checkpoint keeps exactly the arguments the CLI takes


@pytest.mark.parametrize("name", BATCHED)
def test_the_bases_check_the_shared_arguments_for_every_task(name: str) -> None:
    cls = DATA[name]
    with pytest.raises(ValueError, match="data.batch_size must be >= 1"):
        cls(batch_size=0)
    with pytest.raises(ValueError, match="data.num_workers must be >= 0"):
        cls(num_workers=-1)
    if issubclass(cls, SplitDataModule):
        with pytest.raises(ValueError, match="data.split must be three"):
            cls(split=(0.5, 0.5, 0.5))
