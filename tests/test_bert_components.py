"""The BERT network components and the character tokenizer component of the BERT-family tasks (cond_lm,
reading_comprehension, pretrain): a folder factory that equals Bert.from_pretrained, its size checks (one UsageError),
a fresh BERT sized by the data, Conditional LayerNorms through the factory, and a tokenizer whose fitted vocabulary
travels in the DataModule's hyperparameters (kexue.fm/archives/6736, /6915, /7115, /7124)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from kexue.datamodules.reading_comprehension import ReadingComprehensionDataModule
from kexue.errors import UsageError
from kexue.models import BertCharTokenizer, BertFolderCharTokenizer, BertFromConfig, BertFromFolder
from kexue.models.bert import Bert
from kexue.nn.transformer import TransformerConfig
from kexue.seq2seq import build_char_vocab

from .conftest import kexue

QA = Path(__file__).parent / "fixtures" / "qa"
CHARS = build_char_vocab(["周远写了雾中灯塔 the end"])


def folder(path: Path, rows: int = len(CHARS), positions: int = 24) -> Path:
    """A random BERT with its MLM head and a character vocab.txt, as a Hugging Face folder."""
    torch.manual_seed(0)
    config = TransformerConfig(dim=16, num_layers=1, num_heads=2, ffn_dim=32, max_length=positions, dropout=0.0,
                               attention_dropout=0.0)
    Bert(rows, config, pooler=False, mlm=True).save_pretrained(path)
    (path / "vocab.txt").write_text("".join(f"{c}\n" for c in CHARS), encoding="utf-8")
    return path


def test_folder_factory_equals_from_pretrained_and_weights_false_is_fresh(tmp_path: Path) -> None:
    path = folder(tmp_path / "bert")
    ids = torch.randint(5, len(CHARS), (2, 9))
    reference = Bert.from_pretrained(path, pooler=False, mlm=True).eval()
    built = BertFromFolder(str(path), vocab_size=len(CHARS), max_length=24).eval()
    fresh = BertFromFolder(str(path), weights=False).eval()
    with torch.no_grad():
        expected = reference.mlm_logits(reference(ids))
        assert torch.equal(built.mlm_logits(built(ids)), expected)
        assert not torch.allclose(fresh.mlm_logits(fresh(ids)), expected)
    assert fresh.config == built.config and fresh.vocab_size == built.vocab_size


def test_folder_factory_with_condition_dim_starts_as_the_plain_network(tmp_path: Path) -> None:
    path = folder(tmp_path / "bert")
    plain, conditional = BertFromFolder(str(path)).eval(), BertFromFolder(str(path), condition_dim=4).eval()
    ids = torch.randint(5, len(CHARS), (2, 7))
    with torch.no_grad():
        assert torch.allclose(conditional(ids, condition=torch.randn(2, 4)), plain(ids), atol=1e-6)


def test_size_mismatches_are_one_usage_error_naming_the_folder(tmp_path: Path) -> None:
    path = folder(tmp_path / "bert", rows=len(CHARS) - 2)
    with pytest.raises(UsageError, match=rf"tokenizer has {len(CHARS)} ids .* {len(CHARS) - 2} rows"):
        BertFromFolder(str(path), vocab_size=len(CHARS))
    BertFromFolder(str(path), vocab_size=len(CHARS) - 5)  # fewer ids than rows: padded embeddings are fine
    with pytest.raises(UsageError, match="data.max_length=25 exceeds the 24 positions"):
        BertFromFolder(str(path), max_length=25)
    with pytest.raises(UsageError, match="no BERT folder"):
        BertFromFolder(str(tmp_path / "missing"))


def test_fresh_bert_is_sized_by_the_data() -> None:
    bert = BertFromConfig(30, max_length=40, dim=16, num_layers=2, num_heads=2, ffn_dim=32, condition_dim=3)
    assert bert.vocab_size == 30 and bert.config.max_length == 40 and bert.config.condition_dim == 3
    assert bert.transformer.positions.embedding.weight.shape == (40, 16) and bert.mlm is not None
    assert (bert.config.prenorm, bert.config.eps) == (False, 1e-12)  # BERT's layout and floor
    with pytest.raises(UsageError, match="vocab_size"):
        BertFromConfig()


def test_char_tokenizer_fits_once_and_the_folder_one_reads_vocab_txt(tmp_path: Path) -> None:
    tok = BertCharTokenizer(min_count=1)
    assert not tok.fitted
    tok.fit(["周远写了雾中灯塔 the end"])
    tok.fit(["完全不同的文字"])  # fitted: kept
    assert tok.vocabulary == CHARS and tok.vocab_size == len(CHARS)
    ids = tok.encode("周远 end")
    assert ids[2] == CHARS.index("[unused1]") and tok.decode(ids) == "周远 end"
    assert tok.decode([CHARS.index("[CLS]"), *ids, CHARS.index("[SEP]")]) == "周远 end"
    from_folder = BertFolderCharTokenizer(str(folder(tmp_path / "bert")))
    assert from_folder.vocabulary == CHARS and from_folder.encode("周远 end") == ids
    with pytest.raises(UsageError, match="vocab.txt"):
        BertFolderCharTokenizer(str(tmp_path))


def test_the_fitted_vocabulary_travels_in_the_datamodules_hyperparameters() -> None:
    files = {f"{s}_path": str(QA / "train.jsonl") for s in ("train", "val", "test")}
    data = ReadingComprehensionDataModule(**files)
    assert data.hparams.tokenizer["init_args"].get("vocabulary") is None
    size = data.vocab_size  # fits on the training split
    saved = data.hparams.tokenizer
    assert saved["init_args"]["vocabulary"] == data.vocabulary_list and len(data.vocabulary_list) == size
    restored = ReadingComprehensionDataModule(tokenizer=saved)  # what a checkpoint's featurization restores
    assert restored.vocabulary_list == data.vocabulary_list  # without reading any split
    assert "train" not in restored.splits


def test_print_config_shows_the_factory_and_its_tokenizer(tmp_path: Path) -> None:
    path = str(folder(tmp_path / "bert"))
    out = kexue("fit", "reading_comprehension", "--config", "bert_folder", "--model.bert.path", path,
                "--data.tokenizer.path", path, "--print_config")
    assert out.returncode == 0, out.stderr[-2000:]
    config = yaml.safe_load(out.stdout)
    assert config["model"]["bert"]["class_path"] == "kexue.models.BertFromFolder"
    assert config["model"]["bert"]["init_args"]["path"] == path and config["model"]["bert"]["init_args"]["weights"]
    assert config["data"]["tokenizer"] == {"class_path": "kexue.models.BertFolderCharTokenizer",
                                           "init_args": {"path": path}}
    assert "checkpoint" not in config["model"] and "checkpoint" not in config["data"]
