"""Checkpoints written before a task's arguments changed (issue 28: networks became components) fail with one line
that says to retrain, instead of meeting a different network or silently dropping their sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kexue.cli import main
from kexue.errors import UsageError
from kexue.platform.options import check_checkpoint_arguments


class _Model:
    def __init__(self, net: object = None, lr: float = 1e-3) -> None: ...


class _Data:
    def __init__(self, batch_size: int = 8) -> None: ...


class _Open:
    def __init__(self, **kwargs: object) -> None: ...


def test_current_arguments_pass_and_stale_ones_are_named() -> None:
    check_checkpoint_arguments({"hyper_parameters": {"net": {}, "lr": 0.1, "_instantiator": "x"},
                                "datamodule_hyper_parameters": {"batch_size": 4}}, _Model, _Data, "a.ckpt")
    with pytest.raises(UsageError, match=r"a\.ckpt: .*model\.config, model\.checkpoint, data\.vocabulary.*retrain"):
        check_checkpoint_arguments({"hyper_parameters": {"config": {}, "checkpoint": None, "lr": 0.1},
                                    "datamodule_hyper_parameters": {"vocabulary": []}}, _Model, _Data, "a.ckpt")
    check_checkpoint_arguments({"hyper_parameters": {"anything": 1}}, _Open, _Data, "a.ckpt")  # **kwargs: no check


def test_data_arguments_are_checked_through_the_base_a_datamodule_passes_kwargs_to() -> None:
    # Every kexue DataModule takes **kwargs for the arguments its base declares: the check must follow them there,
    # not wave everything through. cond_lm's DataModule took `checkpoint` before its tokenizer became a component.
    from kexue.datamodules.cond_lm import ConditionalLMDataModule

    current = {"tokenizer": {}, "max_length": 64, "train_path": None, "split": [0.8, 0.1, 0.1], "batch_size": 4}
    check_checkpoint_arguments({"datamodule_hyper_parameters": current}, _Model, ConditionalLMDataModule, "a.ckpt")
    with pytest.raises(UsageError, match=r"a\.ckpt: .*took data\.checkpoint, which.*retrain"):
        check_checkpoint_arguments({"datamodule_hyper_parameters": {**current, "checkpoint": None}}, _Model,
                                   ConditionalLMDataModule, "a.ckpt")


def test_cli_refuses_an_old_checkpoint_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {}, "kexue": {"task": "sentiment"},
                "hyper_parameters": {"config": {"dim": 8}, "checkpoint": None}}, old)
    assert main(["test", "sentiment", "--ckpt_path", str(old), "--logger", "none"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("kexue: error: ") and "model.config, model.checkpoint" in last and "retrain" in last, last
