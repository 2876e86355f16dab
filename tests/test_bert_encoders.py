"""BERT folders as encoder components (当Bert遇上Keras, kexue.fm/archives/6736): the same hidden states as transformers'
BertModel, characters aligned one token each, the fine-tuning parameter groups, and the tasks that take them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from kexue.lightning_modules.text_classifier import TextClassifier
from kexue.models import BertCharEncoder, BertTextEncoder
from kexue.text.tokenizers import BertChars, WordPiece

from .conftest import assert_one_line_error, kexue

transformers = pytest.importorskip("transformers")
CHARS = sorted(set("这家酒店很好不错服务太差了房间干净北京上海的人我们去") | set("abc"))


def tiny_bert(folder: Path, layers: int = 2, positions: int = 64) -> transformers.BertModel:
    """A random BERT folder written by transformers over a few characters; returns the model (eval mode)."""
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS])
                                      + "\n", encoding="utf-8")
    config = transformers.BertConfig(vocab_size=6 + len(CHARS), hidden_size=16, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=positions)
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.save_pretrained(folder)
    return model.eval()


def test_text_encoder_equals_transformers_cls_vector(tmp_path: Path) -> None:
    ref = tiny_bert(tmp_path / "bert")
    enc = BertTextEncoder(str(tmp_path / "bert"), dropout=0.0).eval()
    tokenizer = WordPiece(str(tmp_path / "bert"))
    ids = tokenizer(["这家酒店很好", "太差了", "北京x上海"])  # x: not in the vocabulary -> [UNK]
    assert torch.equal(pickle.loads(pickle.dumps(tokenizer))(["这家酒店很好", "太差了", "北京x上海"]), ids)  # workers
    assert ids[2].tolist()[:4] == [3, CHARS.index("北") + 6, CHARS.index("京") + 6, 2]  # [CLS] 北 京 [UNK]
    assert ids[1].tolist() == [3, *(CHARS.index(c) + 6 for c in "太差了"), 4, 0, 0, 0]  # [SEP], then [PAD] = 0
    padding = ids > 0
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=padding.long()).last_hidden_state[:, 0]
        assert torch.allclose(enc(ids), expected, atol=1e-5)
    mean = BertTextEncoder(str(tmp_path / "bert"), dropout=0.0, pooling="mean").eval()
    with torch.no_grad():
        h = ref(input_ids=ids, attention_mask=padding.long()).last_hidden_state
        want = (h * padding[..., None]).sum(1) / padding.sum(1, keepdim=True)
        assert torch.allclose(mean(ids), want, atol=1e-5)


def test_char_encoder_gives_one_vector_per_character(tmp_path: Path) -> None:
    ref = tiny_bert(tmp_path / "bert")
    enc = BertCharEncoder(str(tmp_path / "bert"), dropout=0.0).eval()
    tokenizer = BertChars(str(tmp_path / "bert"))
    texts = ["A 好", "服务太差了"]  # 'A' -> 'a' (lower case), ' ' -> [unused1]
    assert tokenizer.rows(texts[0]) == [[CHARS.index("a") + 6], [1], [CHARS.index("好") + 6]]
    ids = tokenizer(texts)  # (2, 5, 1)
    mask = ids[..., 0] > 0
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    with torch.no_grad():
        out = enc(ids, mask)  # (2, 5, 16)
        for i, text in enumerate(texts):
            alone = torch.tensor([[3, *(row[0] for row in tokenizer.rows(text)), 4]])  # [CLS] ... [SEP]
            assert torch.allclose(out[i, : len(text)], ref(input_ids=alone).last_hidden_state[0, 1:-1], atol=1e-5)


def test_parameter_groups_decay_by_layer_and_spare_biases_and_norms(tmp_path: Path) -> None:
    tiny_bert(tmp_path / "bert", layers=3)
    enc = BertTextEncoder(str(tmp_path / "bert"), layerwise_decay=0.5, weight_decay=0.1)
    groups = enc.parameter_groups()
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in enc.parameters())  # each parameter exactly once
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(enc.bert.embed.weight)]["lr_multiplier"] == 0.5 ** 3  # embeddings, 3 layers below the top
    top = enc.bert.transformer.layers[-1]
    assert all(by_param[id(p)]["lr_multiplier"] == 1.0 for p in top.parameters())
    for name, p in enc.named_parameters():
        assert by_param[id(p)]["weight_decay"] == (0.0 if p.ndim == 1 else 0.1), name
    model = TextClassifier(encoder=enc, lr=1e-3)
    lrs = {id(p): g["lr"] for g in model.configure_optimizers().param_groups for p in g["params"]}
    assert lrs[id(enc.bert.embed.weight)] == pytest.approx(1e-3 * 0.125) and lrs[id(model.head.weight)] == 1e-3


def bert_options(folder: Path, preset: str = "bert") -> list[str]:
    """The BERT preset over one folder: the encoder's weights and the DataModule's tokenizer."""
    return ["--config", preset, "--model.encoder.checkpoint", str(folder), "--data.tokenizer.checkpoint", str(folder)]


def test_sentiment_and_cws_take_a_bert_folder_and_predict_from_the_checkpoint(tmp_path: Path) -> None:
    tiny_bert(tmp_path / "bert")
    quick = ["--trainer.fast_dev_run", "2", "--logger", "none"]
    proc = kexue("fit", "cws", *bert_options(tmp_path / "bert", "bert_chars"), "--data.max_length", "62", *quick)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = tmp_path / "train.tsv"
    train.write_text("这家酒店很好\tgood\n服务太差了\tbad\n房间干净\tgood\n太差\tbad\n", encoding="utf-8")
    fit = kexue("fit", "sentiment", *bert_options(tmp_path / "bert"), "--data.labels", "[bad,good]",
                *[f"--data.{s}_path={train}" for s in ("train", "val", "test")], "--trainer.max_epochs=1",
                "--logger", "none", "--trainer.enable_progress_bar=false")
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = next(tmp_path.glob("runs/sentiment/*/checkpoints/best-*.ckpt"))
    saved = torch.load(best, weights_only=True)["datamodule_hyper_parameters"]["tokenizer"]
    assert saved == {"class_path": "kexue.text.tokenizers.WordPiece",
                     "init_args": {"checkpoint": str(tmp_path / "bert"), "max_length": 128}}
    texts = tmp_path / "texts.txt"
    texts.write_text("很好\n\n太差了\n", encoding="utf-8")
    pred = kexue("predict", "sentiment", "--ckpt_path", str(best), "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = pred.stdout.splitlines()  # one line per input line, nothing else
    assert len(lines) == 3, lines
    assert lines[1] == "" and all(lines[i].split("\t")[0] in ("bad", "good") for i in (0, 2)), lines
    proc = kexue("fit", "sentiment", "--config", "bert", *quick)
    assert_one_line_error(proc, "checkpoint")


def test_a_tokenizer_that_is_not_the_encoders_is_one_line(tmp_path: Path) -> None:
    tiny_bert(tmp_path / "bert")
    quick = ["--trainer.fast_dev_run", "1", "--logger", "none"]
    hashed = kexue("fit", "sentiment", "--config", "bert", "--model.encoder.checkpoint", str(tmp_path / "bert"),
                   "--data.tokenizer", "kexue.text.tokenizers.HashedNgrams", *quick)
    assert_one_line_error(hashed, "the tokenizer has 262144 ids", f"{len(CHARS) + 6} rows")
    chars = kexue("fit", "cws", "--model.encoder", "kexue.models.BertCharEncoder", "--model.encoder.checkpoint",
                  str(tmp_path / "bert"), *quick)  # the default tokenizer: three hashed ids per character
    assert_one_line_error(chars, "gives 3", "--data.tokenizer kexue.text.tokenizers.BertChars")
    vocab = tmp_path / "bert" / "vocab.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "多\n", encoding="utf-8")
    longer = kexue("fit", "sentiment", *bert_options(tmp_path / "bert"), *quick)
    assert_one_line_error(longer, f"the tokenizer has {len(CHARS) + 7} ids", f"{len(CHARS) + 6} rows")
