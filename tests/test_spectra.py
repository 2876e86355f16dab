"""Task ``spectra``: the residual Conv1D block against torch functional references, the readers, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kexue.data import spectra as readers
from kexue.datamodules.spectra import SpectraDataModule
from kexue.errors import UsageError
from kexue.lightning_modules.spectra_classifier import SpectraClassifier, augment_spectra
from kexue.nn import ResidualBlock1d, ResidualConv1dClassifier, normalize_spectra
from kexue.nn.conv1d import ResidualConv1dEncoder
from tests.conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ["star", "galaxy", "qso", "unknown"]


def test_normalize_spectra_matches_numpy() -> None:
    x = torch.randn(4, 30, dtype=torch.float64) * torch.tensor([[1.0], [100.0], [0.01], [5.0]]) + 3.0
    ref = (x.numpy() - x.numpy().mean(-1, keepdims=True)) / x.numpy().std(-1, keepdims=True)
    np.testing.assert_allclose(normalize_spectra(x, "zscore").numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(
        normalize_spectra(x, "max").numpy(), x.numpy() / np.abs(x.numpy()).max(-1, keepdims=True)
    )
    assert torch.equal(normalize_spectra(x, "none"), x)
    assert torch.isfinite(normalize_spectra(torch.ones(2, 5), "zscore")).all()  # a flat row: zeros, not NaN
    with pytest.raises(ValueError, match="normalization"):
        normalize_spectra(x, "l2")


@pytest.mark.parametrize("in_channels", [8, 3])  # identity shortcut, then 1x1 projection
def test_residual_block_matches_functional_reference(in_channels: int) -> None:
    torch.manual_seed(0)
    block = ResidualBlock1d(in_channels, 8, (5, 3)).eval()
    for m in block.modules():  # non-trivial BN statistics, so a wrong BN wiring would show
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, in_channels, 17)
    conv1, bn1, _, conv2, bn2 = block.body

    def bn(h: torch.Tensor, m: torch.nn.BatchNorm1d) -> torch.Tensor:
        return F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    h = F.relu(bn(F.conv1d(x, conv1.weight, padding=2), bn1))  # "same" padding of width 5
    h = bn(F.conv1d(h, conv2.weight, padding=1), bn2)
    short = x if in_channels == 8 else bn(F.conv1d(x, block.shortcut[0].weight), block.shortcut[1])
    torch.testing.assert_close(block(x), F.relu(h + short))


def test_classifier_shapes_pooling_and_scale_invariance() -> None:
    torch.manual_seed(0)
    net = ResidualConv1dClassifier(3, channels=(4, 6, 6), pool="max", global_pool="avgmax").eval()
    x = torch.randn(5, 101)
    assert net(x).shape == (5, 3) and net.embed(x).shape == (5, 12)
    assert net.features(x.unsqueeze(1)).shape == (5, 6, 25)  # two stage boundaries: 101 -> 50 -> 25
    # Per-spectrum z-scoring: a spectrum's flux scale and offset cannot change the prediction.
    torch.testing.assert_close(net(x * torch.rand(5, 1) * 1e3 + 7.0), net(x), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError):
        ResidualConv1dClassifier(3, channels=())


def test_augment_spectra() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 40)
    assert torch.equal(augment_spectra(x), x)
    shifted = augment_spectra(x, shift=0.1)
    for row, out in zip(x, shifted):  # each row is x shifted by |s| <= 4 with the end values repeated
        matches = [s for s in range(-4, 5) if torch.equal(out, row[(torch.arange(40) - s).clamp(0, 39)])]
        assert matches, out
    ratio = augment_spectra(x, scale=0.2) / x  # (6, 40): one factor per spectrum
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


def test_balanced_class_weight_matches_sklearn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    data = SpectraDataModule(flux_path=str(FIXTURES / "lamost_flux.csv"), index_path=str(FIXTURES / "lamost_index.csv"))
    assert data.labels == LABELS  # read on first use: what the task links to model.labels
    data.setup("fit")
    train_y = data.splits["train"][1]
    assert data.class_counts == [int((train_y == c).sum()) for c in range(4)]
    y = np.concatenate([train_y, [0, 0, 0, 1]])  # imbalanced on purpose
    counts = [int((y == c).sum()) for c in range(4)]
    model = SpectraClassifier(labels=LABELS, class_weight="balanced", class_counts=counts)
    ref = compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(model.class_weight.numpy(), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="class_counts"):
        SpectraClassifier(labels=LABELS, class_weight="balanced")


def test_model_takes_its_encoder_as_a_component() -> None:
    encoder = ResidualConv1dEncoder(channels=(4, 6), pool="avg", global_pool="avgmax")
    model = SpectraClassifier(labels=["a", "b", "c"], encoder=encoder).eval()
    assert model.encoder is encoder and model.head.in_features == 12
    assert model(torch.randn(5, 40)).shape == (5, 3)
    a, b = SpectraClassifier(labels=LABELS), SpectraClassifier(labels=LABELS)  # the default: one copy each
    assert a.encoder is not b.encoder and a.encoder.output_dim == 64


def test_read_ts_matches_handwritten_rows(tmp_path: Path) -> None:
    path = tmp_path / "toy.ts"
    path.write_text("# comment\n@problemName toy\n@classLabel true a b\n@data\n1,2,3:a\n4.5,-1,0:b\n")
    x, y = readers.read_ts(path)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4.5, -1, 0]])
    assert y == ["a", "b"]
    x_train, y_train, x_test, y_test = readers.ucr_dataset("GunPoint")
    assert x_train.shape == (50, 150) and x_test.shape == (150, 150) and set(y_train) == {"1", "2"}
    # Independent check of one row against the file read with numpy.
    lines = (readers.ucr_root() / "GunPoint" / "GunPoint_TRAIN.ts").read_text().splitlines()
    first = lines[[i for i, s in enumerate(lines) if s.lower().startswith("@data")][0] + 1]
    np.testing.assert_allclose(x_train[0], np.array(first.rsplit(":", 1)[0].split(","), dtype=np.float32))


def test_coffee_and_folds() -> None:
    x, y = readers.coffee()
    assert x.shape == (60, 1841) and len(set(y)) == 3
    labels = np.array([sorted(set(y)).index(v) for v in y])
    fold = readers.stratified_folds(labels, 5, seed=3)
    for k in range(5):  # 20 spectra of each origin: exactly 4 per fold
        assert np.bincount(labels[fold == k], minlength=3).tolist() == [4, 4, 4]
    assert not np.array_equal(fold, readers.stratified_folds(labels, 5, seed=4))


def test_lamost_csv_and_fits_readers(tmp_path: Path) -> None:
    ids, x = readers.read_flux_csv(FIXTURES / "lamost_flux.csv")  # its header row is skipped
    assert x.shape == (24, 50) and ids[0] == "1000"
    y = readers.read_label_index(FIXTURES / "lamost_index.csv", ids, FIXTURES / "lamost_flux.csv", LABELS)
    assert y[:5] == [0, 1, 2, 3, 0]
    (tmp_path / "empty.csv").write_text("id,type\n")
    with pytest.raises(UsageError, match="'1000' has no label"):
        readers.read_label_index(tmp_path / "empty.csv", ids, "flux.csv", LABELS)
    from astropy.io import fits

    for i in range(3):  # LAMOST layout: primary HDU rows = flux, inverse variance, ...
        fits.PrimaryHDU(np.stack([x[i], np.ones(50, np.float32)])).writeto(tmp_path / f"{ids[i]}.fits")
    fits_ids, fits_x = readers.read_fits_folder(tmp_path)
    assert fits_ids == ids[:3]
    np.testing.assert_array_equal(fits_x, x[:3])


@pytest.mark.parametrize(
    ("flux", "index", "fragments"),
    [
        ("lamost_flux_ragged.csv", "lamost_index.csv", ["lamost_flux_ragged.csv:5:", "ragged row"]),
        ("lamost_flux_nan.csv", "lamost_index.csv", ["lamost_flux_nan.csv:3:", "NaN"]),
        ("lamost_flux.csv", "lamost_index_badlabel.csv", ["lamost_index_badlabel.csv:7:", "'pulsar'"]),
    ],
)
def test_bad_input_is_one_line(flux: str, index: str, fragments: list[str]) -> None:
    proc = kexue(
        "run",
        "spectra",
        "--data.flux_path",
        str(FIXTURES / flux),
        "--data.index_path",
        str(FIXTURES / index),
        "--trainer.fast_dev_run=1",
        "--logger",
        "none",
    )
    assert_one_line_error(proc, *fragments)


def test_unknown_dataset_is_one_line() -> None:
    assert_one_line_error(
        kexue("run", "spectra", "--data.dataset", "NoSuchSet", "--trainer.fast_dev_run=1", "--logger", "none"),
        "NoSuchSet",
        "OSULeaf",
    )


def test_lamost_run_with_balanced_weights() -> None:
    proc = kexue(
        "run",
        "spectra",
        "--data.flux_path",
        str(FIXTURES / "lamost_flux.csv"),
        "--data.index_path",
        str(FIXTURES / "lamost_index.csv"),
        "--model.class_weight",
        "balanced",
        "--trainer.max_epochs",
        "3",
        "--logger",
        "csv",
        "--trainer.enable_progress_bar=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/f1 " in proc.stdout and "test/acc " in proc.stdout
    figures = {p.name for p in Path().glob("runs/spectra/**/figures/*.png")}
    assert {"data_spectra.png", "test_confusion_matrix.png"} <= figures, figures


def test_recommended_ucr_configs_build(capsys: pytest.CaptureFixture[str]) -> None:
    """Every conf/spectra_<set>.yaml names a shipped UCR set and parses on top of the task's config (an unknown
    key would be an error), and its settings are what runs."""
    import yaml

    from kexue.data.spectra import UCR_DATASETS
    from kexue.platform.cli import main

    paths = sorted((Path(__file__).parent.parent / "conf").glob("spectra_*.yaml"))
    assert {p.stem for p in paths} >= {"spectra_acsf1", "spectra_arrowhead"}
    for path in paths:
        cfg = yaml.safe_load(path.read_text())
        assert set(cfg) <= {"trainer", "model", "data"}, path
        assert cfg["data"]["dataset"] in UCR_DATASETS, path
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "spectra", "--config", str(path), "--print_config"])
        assert exit_info.value.code in (0, None), path
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["data"]["dataset"] == cfg["data"]["dataset"], path
        for key, value in cfg.get("model", {}).get("encoder", {}).get("init_args", {}).items():
            assert printed["model"]["encoder"]["init_args"][key] == value, (path, key)
