"""Scale on the CPU: DDP (``ddp`` and ``ddp_spawn``, 2 processes) gives the metrics of one process with the
same global batch, the DataModules shard without repeats, and DataLoader workers draw different noise."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kexue.data.datamodule import EpochSeededSampler

from .conftest import kexue

# 10 global batches of 64 = 10 steps of 2 x 32 under DDP; validation on the same first 4 x 64 examples.
COMMON = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=10", "--trainer.accelerator=cpu",
          "--logger", "csv", "--trainer.enable_progress_bar=false"]


def final_val(root: Path) -> dict[str, float]:
    (path,) = root.glob("runs/sentiment/*/metrics.csv")
    row = [r for r in csv.DictReader(path.open()) if r.get("val/acc")][-1]
    return {"val/acc": float(row["val/acc"]), "val/loss": float(row["val/loss"])}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    cwd = tmp_path_factory.mktemp("single")
    proc = kexue("fit", "sentiment", *COMMON, "--trainer.limit_val_batches=4", "--data.batch_size=64", cwd=cwd,
                 env={"WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return final_val(cwd)


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_two_processes_match_one_with_the_same_global_batch(strategy: str, one_process: dict[str, float],
                                                            tmp_path: Path) -> None:
    proc = kexue("fit", "sentiment", *COMMON, "--trainer.limit_val_batches=4", "--data.batch_size=32",
                 f"--trainer.strategy={strategy}", "--trainer.devices=2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = final_val(tmp_path)
    # Same data order (EpochSeededSampler = DistributedSampler's permutation), same averaged gradients;
    # only float summation order differs.
    assert got["val/loss"] == pytest.approx(one_process["val/loss"], abs=1e-4)
    assert abs(got["val/acc"] - one_process["val/acc"]) <= 2 / 256


def test_ddp_shards_each_epoch_without_repeats(tmp_path: Path) -> None:
    texts = [f"第{i}条评论，很好" for i in range(40)]
    data = tmp_path / "train.tsv"
    data.write_text("".join(f"{t}\tpos\n" if i % 2 else f"{t}\tneg\n" for i, t in enumerate(texts)), encoding="utf-8")
    proc = kexue("fit", "sentiment", "--data.train_path", str(data), "--data.val_path", str(data),
                 "--data.test_path", str(data), "--data.batch_size=4", "--trainer.max_epochs=2",
                 "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--logger", "none",
                 "--trainer.callbacks+=kexue.tests.helpers.RecordBatches", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from kexue.datamodules.sentiment import SentimentDataModule

    collate = SentimentDataModule().collate  # the task's own featurisation: the rows the model must have seen
    expected = sorted(",".join(str(i) for i in collate([(t, 0)])["ids"][0].tolist() if i) for t in texts)
    assert len(set(expected)) == 40
    for epoch in (0, 1):
        seen = [(tmp_path / f"seen-rank{r}-epoch{epoch}.txt").read_text(encoding="utf-8").split() for r in (0, 1)]
        assert len(seen[0]) == len(seen[1]) == 20
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1]) == expected
    orders = [(tmp_path / f"seen-rank0-epoch{e}.txt").read_text(encoding="utf-8").split() for e in (0, 1)]
    assert orders[0] != orders[1]  # reshuffled each epoch


def test_epoch_seeded_sampler_is_distributed_samplers_order() -> None:
    from torch.utils.data import DistributedSampler

    sampler = EpochSeededSampler(range(50), seed=7)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(50))
        for rank in (0, 1):
            shard = DistributedSampler(range(50), num_replicas=2, rank=rank, seed=7, shuffle=True)
            shard.set_epoch(epoch)
            assert list(shard) == order[rank::2]


class Noise(Dataset):
    """Each item is fresh noise from the three RNGs an augmentation might use."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([torch.rand(()).item(), float(np.random.rand()), random.random()])


class Collect(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch)
        return self.w * batch.sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def noise_from_workers() -> torch.Tensor:
    L.seed_everything(3, workers=True)  # what the kexue CLI (LightningCLI) does with seed_everything
    model = Collect()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, DataLoader(Noise(), batch_size=4, num_workers=2))
    return torch.cat(model.seen)  # (32, 3)


def test_dataloader_workers_draw_distinct_reproducible_noise() -> None:
    first, second = noise_from_workers(), noise_from_workers()
    for column in range(3):  # torch, numpy and random: no value repeated across the two workers
        assert first[:, column].unique().numel() == 32
    assert torch.equal(first, second)


def test_predict_under_ddp_prints_once_in_input_order(tmp_path: Path) -> None:
    """Each rank predicts its shard (DistributedSampler pads it with repeats); rank 0 gathers and prints every
    input line's answer once, in input order, and the same answers as one process."""
    fit = kexue("fit", "sentiment", "--trainer.max_steps=3", "--trainer.limit_val_batches=1", "--logger", "none")
    assert fit.returncode == 0, fit.stderr[-2000:]
    (ckpt,) = tmp_path.glob("runs/sentiment/*/checkpoints/last.ckpt")
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"第{i}条：{'很好' if i % 3 else '太差'}\n" for i in range(7)) + "\n", encoding="utf-8")
    args = ["predict", "sentiment", "--ckpt_path", str(ckpt), "--data.predict_path", str(texts), "--logger", "none",
            "--data.batch_size=2"]
    one = kexue(*args)
    two = kexue(*args, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", timeout=600)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    assert len(one.stdout.splitlines()) == 8  # 7 texts and a blank line
    assert two.stdout.splitlines() == one.stdout.splitlines()


def test_resume_under_ddp_goes_on_from_the_saved_step(tmp_path: Path) -> None:
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--logger", "none",
           "--trainer.limit_val_batches=1", "--checkpoint_every_n_steps=2", "--data.batch_size=8"]
    first = kexue("fit", "sentiment", *ddp, "--trainer.max_steps=4", timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = kexue("fit", "sentiment", *ddp, "--trainer.max_steps=6", "--ckpt_path", "last", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restoring states from" in resumed.stderr
    steps = sorted(torch.load(p, weights_only=True)["global_step"]
                   for p in tmp_path.glob("runs/sentiment/*/checkpoints/last.ckpt"))
    assert steps == [4, 6]


@pytest.mark.parametrize("task, extra", [
    ("gan", ["--data.dataset=digits", "--trainer.max_epochs=1"]),  # the discriminator step leaves G without grads
    ("vq_vae", ["--trainer.max_epochs=2", "--model.prior_epochs=1"]),  # each stage trains half the parameters
])
def test_models_with_unused_parameters_train_under_plain_ddp(task: str, extra: list[str], tmp_path: Path) -> None:
    # `--trainer.strategy ddp` alone: the CLI picks Lightning's find_unused_parameters variant for models that
    # declare ddp_unused_parameters (plain DDP stopped both at their first step).
    proc = kexue("fit", task, *extra, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                 "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--logger", "none",
                 "--trainer.enable_progress_bar=false", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopped: `max_epochs=" in proc.stderr + proc.stdout
