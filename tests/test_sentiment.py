"""The sentiment task: its defaults in one place, featurisation in collate, swappable encoders, user files,
and a checkpoint that predicts on its own (kexue.fm/archives/4293, /4233)."""

from __future__ import annotations

import inspect
import re
import zlib
from pathlib import Path

import pytest
import torch
import yaml

from kexue.datamodules.sentiment import SentimentDataModule
from kexue.errors import UsageError
from kexue.lightning_modules.text_classifier import TextClassifier
from kexue.nn import MeanEmbeddingEncoder
from kexue.text.tokenizers import HashedNgrams

from .conftest import kexue

REPO = Path(__file__).resolve().parent.parent
REVIEWS = Path(__file__).parent / "fixtures" / "reviews.tsv"


def signature_defaults(cls: type) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("task, model, data", [
    ("sentiment", "kexue.lightning_modules.text_classifier:TextClassifier",
     "kexue.datamodules.sentiment:SentimentDataModule"),
    ("multilabel", "kexue.lightning_modules.multilabel_classifier:MultilabelClassifier",
     "kexue.datamodules.multilabel:MultilabelDataModule"),
])
def test_task_yaml_repeats_no_signature_default(task: str, model: str, data: str) -> None:
    """One source of defaults: whatever model/data keys the YAML sets must differ from the class signature."""
    import importlib

    conf = yaml.safe_load((REPO / "conf" / f"{task}.yaml").read_text(encoding="utf-8"))
    for section, ref in (("model", model), ("data", data)):
        module, _, name = ref.partition(":")
        defaults = signature_defaults(getattr(importlib.import_module(module), name))
        for key, value in (conf.get(section) or {}).items():
            assert key in defaults and value != defaults[key], f"{task}.yaml {section}.{key} repeats or is unknown"


def test_default_model_is_the_measured_small_init_mean_model() -> None:
    torch.manual_seed(0)
    model = TextClassifier().eval()
    assert isinstance(model.encoder, MeanEmbeddingEncoder)
    weight = model.encoder.embedding.weight.detach()  # (2**18, 8)
    assert weight.shape == (2**18, 8) and torch.all(weight[0] == 0)
    assert weight[1:].std().item() == pytest.approx(0.01, rel=0.05)
    batch = SentimentDataModule().collate([("好", 1), ("很差", 0)])
    with torch.no_grad():
        features = model.encoder(batch["ids"])  # (2, 8)
    assert features.abs().max().item() < 0.1  # with N(0, 1) rows a one-character text's feature is O(1)


def test_models_built_with_the_default_encoder_do_not_share_it() -> None:
    torch.manual_seed(0)
    first = TextClassifier()
    after_first = torch.rand(3)
    torch.manual_seed(0)
    second = TextClassifier()
    assert torch.equal(torch.rand(3), after_first)  # building a model draws the same from the RNG every time
    assert first.encoder is not second.encoder
    assert first.encoder.embedding.weight.data_ptr() != second.encoder.embedding.weight.data_ptr()
    # Saved as the CLI saves a component: its class_path and init_args, not a module.
    assert first.hparams["encoder"] == {"class_path": "kexue.nn.MeanEmbeddingEncoder", "init_args": {
        "num_embeddings": 2**18, "embed_dim": 8, "dropout": 0.0, "embed_init_std": 0.01}}


def test_collate_hashes_char_ngrams_like_a_handwritten_reference() -> None:
    dm = SentimentDataModule(tokenizer=HashedNgrams(ngrams=[1, 2], num_buckets=1000, max_length=3))
    batch = dm.collate([("好用", 1), ("不好用吧", 0)])

    def bucket(s: str) -> int:  # CRC-32, then the 999 non-padding buckets 1..999
        return zlib.crc32(s.encode("utf-8")) % 999 + 1

    first = [bucket("好"), bucket("用"), bucket("好用")]
    second = [bucket(s) for s in ("不", "好", "用", "不好", "好用")]  # cut to 3 characters first
    assert batch["ids"].tolist() == [first + [0, 0], second]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    assert "texts" not in batch  # the model reads ids only, whichever tokenizer made them
    raw = dm.collate([("好", None), ("", None)])  # predict lines: texts ride along to be printed, no labels
    assert raw["texts"] == ["好", ""] and "labels" not in raw and raw["ids"].tolist() == [[bucket("好")], [0]]


@pytest.mark.parametrize("option, value", [("num_buckets", 1), ("ngrams", []), ("max_length", 0)])
def test_bad_featurisation_settings_name_the_option(option: str, value: object) -> None:
    with pytest.raises(UsageError, match=f"data.tokenizer.{option} must"):
        SentimentDataModule(tokenizer=HashedNgrams(**{option: value}))
    with pytest.raises(ValueError, match="data.batch_size must"):
        SentimentDataModule(batch_size=0)


def test_user_files_replace_embedded_splits(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("真好\tgood\n真差\tbad\n", encoding="utf-8")
    dm = SentimentDataModule(labels=["bad", "good"], train_path=str(train))  # val/test: the embedded corpus
    dm.setup("fit")
    assert dm.splits["train"] == [("真好", 1), ("真差", 0)]
    assert len(dm.splits["val"]) > 1000 and len(dm.splits["test"]) > 1000

    every = SentimentDataModule(train_path=str(REVIEWS), val_path=str(REVIEWS), test_path=str(REVIEWS))
    every.setup("fit")
    rows = [(text, ["neg", "pos"].index(label)) for text, label in
            (line.split("\t") for line in REVIEWS.read_text(encoding="utf-8").splitlines() if line.strip())]
    assert every.splits == {"train": rows, "val": rows, "test": rows}


def test_run_on_user_files_tests_on_them_and_links_the_bucket_count(tmp_path: Path) -> None:
    data = str(REVIEWS)
    proc = kexue("run", "sentiment", "--data.train_path", data, "--data.val_path", data, "--data.test_path", data,
                 "--data.tokenizer.num_buckets", "4096", "--trainer.max_epochs=1", "--logger", "none",
                 "--trainer.enable_progress_bar=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = float(re.search(r"^test/acc (\S+)$", proc.stdout, re.M).group(1))
    # Five test reviews give an accuracy in fifths; the embedded test split (1,737 reviews) never prints one.
    assert acc * 5 == pytest.approx(round(acc * 5), abs=1e-3)
    ckpt = torch.load(next(tmp_path.glob("runs/sentiment/*/checkpoints/best-*.ckpt")), weights_only=True)
    assert ckpt["hyper_parameters"]["encoder"]["init_args"]["num_embeddings"] == 4096
    assert ckpt["state_dict"]["encoder.embedding.weight"].shape == (4096, 8)


@pytest.mark.parametrize("encoder, extra", [
    ("kexue.nn.ConvEncoder", ["--model.encoder.kernel_sizes", "[3,5]", "--model.encoder.hidden_dim", "8"]),
    ("kexue.nn.RecurrentEncoder", ["--model.encoder.cell", "lstm", "--model.encoder.hidden_dim", "8"]),
])
def test_encoder_is_picked_on_the_command_line(encoder: str, extra: list[str]) -> None:
    proc = kexue("run", "sentiment", "--model.encoder", encoder, *extra, "--data.tokenizer.num_buckets", "4096",
                 "--data.tokenizer.max_length", "3", "--trainer.fast_dev_run", "true", "--logger", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the model summary: plain (|) or rich (│) table, rich being present when a dev dependency pulls it in
    assert re.search(rf"encoder\s*[|│┃]\s*{encoder.rsplit('.', 1)[1]}", proc.stdout + proc.stderr)
    assert re.search(r"^test/acc \S+$", proc.stdout, re.M)


def test_checkpoint_alone_predicts_one_line_per_input_line(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("真好用\tgood\n真差劲\tbad\n很好\tgood\n太差\tbad\n", encoding="utf-8")
    fit = kexue("fit", "sentiment", "--data.labels", "[bad,good]", "--data.tokenizer.num_buckets", "512", "--data.tokenizer.ngrams", "[1]",
                "--model.encoder.embed_dim", "4", *[f"--data.{s}_path={train}" for s in ("train", "val", "test")],
                "--trainer.max_epochs=2", "--logger", "none", "--trainer.enable_progress_bar=false")
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = str(next(tmp_path.glob("runs/sentiment/*/checkpoints/best-*.ckpt")))
    texts = tmp_path / "texts.txt"
    texts.write_text("很好用，推荐\n\n太烂了\n", encoding="utf-8")
    pred = kexue("predict", "sentiment", "--ckpt_path", best, "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = pred.stdout.splitlines()  # one line per input line, nothing else
    assert len(lines) == 3, lines
    assert lines[1] == "" and all(re.fullmatch(r"(bad|good)\t(0\.[5-9]\d{3}|1\.0000)", lines[i]) for i in (0, 2)), lines
