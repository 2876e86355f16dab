"""Task cond_lm: a BERT folder loaded with Conditional LayerNorms is the same network for any label before training,
different labels give different outputs once the projections move, the mask is causal, padding costs no loss, the
sample metrics, and fit -> predict and a bad label line through the CLI (kexue.fm/archives/7124)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kexue.datamodules.cond_lm import ConditionalLMDataModule
from kexue.generation import GenerationConfig
from kexue.lightning_modules.cond_lm import ConditionalLM
from kexue.metrics import copy_rate, distinct_n
from kexue.models.bert import Bert, BertFromConfig
from kexue.models.conditional_lm import ConditionalBertLM
from kexue.models.tokenizers import BertCharTokenizer, train_wordpiece
from kexue.nn.transformer import TransformerConfig
from kexue.seq2seq import build_char_vocab

from .conftest import assert_one_line_error, kexue

TINY = ["--model.bert.dim", "16", "--model.bert.num_layers", "1", "--model.bert.num_heads", "2",
        "--model.bert.ffn_dim", "32", "--model.bert.condition_dim", "4", "--model.generation.max_new_tokens", "8"]
QUICK = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
         "--trainer.max_epochs", "1", "--logger", "none", "--trainer.enable_progress_bar", "false"]
TEXTS = ["这个酒店很好", "房间太小了", "服务不错", "很差的体验"]


def bert_folder(path: Path) -> Path:
    """A random 1-layer BERT with its MLM head and a WordPiece vocabulary, written as a Hugging Face folder."""
    tokenizer = train_wordpiece(TEXTS * 3, vocab_size=100, min_frequency=1)
    torch.manual_seed(0)
    config = TransformerConfig(dim=16, num_layers=1, num_heads=2, ffn_dim=32, max_length=32, eps=1e-12)
    bert = Bert(tokenizer.get_vocab_size(), config, pooler=False, mlm=True)
    for name, p in bert.named_parameters():  # LayerNorms away from (1, 0), so that loading them is seen
        if "norm" in name:
            torch.nn.init.normal_(p, mean=1.0 if name.endswith("weight") else 0.0, std=0.3)
    bert.save_pretrained(path, tokenizer)
    return path


def test_zero_projections_give_the_checkpoints_plain_layernorms_for_any_label(tmp_path: Path) -> None:
    folder = bert_folder(tmp_path / "bert")
    plain = Bert.from_pretrained(folder).eval()
    conditional = Bert.from_pretrained(folder, condition_dim=4).eval()
    ids = torch.randint(5, plain.vocab_size, (2, 7))
    with torch.no_grad():
        expected = plain(ids)
        for condition in (torch.randn(2, 4), torch.zeros(2, 4)):
            assert torch.allclose(conditional(ids, condition=condition), expected, atol=1e-6)
    assert all(p.abs().sum() == 0 for n, p in conditional.named_parameters() if ".to_" in n)
    with pytest.raises(ValueError, match="condition"):
        conditional(ids)  # a conditional BERT without its condition


def test_labels_give_different_outputs_once_the_projections_are_non_zero() -> None:
    torch.manual_seed(0)
    bert = Bert(30, TransformerConfig(dim=16, num_layers=1, num_heads=2, condition_dim=4, dropout=0.0), pooler=False,
                mlm=True)
    net = ConditionalBertLM(bert, num_labels=2).eval()
    ids = torch.randint(5, 30, (1, 6)).repeat(2, 1)
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        logits = net(ids, labels)
        assert torch.allclose(logits[0], logits[1], atol=1e-6)  # zero projections: the label is not seen yet
        for name, p in net.named_parameters():
            if ".to_" in name:
                p.normal_(std=0.5)
        logits = net(ids, labels)
    assert (logits[0] - logits[1]).abs().max() > 1e-3


def test_the_mask_is_causal_and_padding_costs_no_loss() -> None:
    vocab = build_char_vocab(TEXTS)
    torch.manual_seed(0)
    bert = BertFromConfig(len(vocab), max_length=32, dim=16, num_layers=2, num_heads=2, ffn_dim=32, dropout=0.0,
                          attention_dropout=0.0, condition_dim=4)
    model = ConditionalLM(bert, vocab, generation=GenerationConfig(max_new_tokens=8)).eval()
    data = ConditionalLMDataModule(tokenizer=BertCharTokenizer(vocab))
    batch = data.collate([("很好", 1), ("房间太小了", 0)])
    ids, labels = batch["ids"], batch["labels"]
    changed = ids.clone()
    changed[:, 3] = 7
    with torch.no_grad():
        a, b = model(ids, labels), model(changed, labels)
        assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6) and not torch.allclose(a[:, 3:], b[:, 3:])
        logits, targets = model._logits_targets(batch)
        alone, alone_targets = model._logits_targets(data.collate([("很好", 1)]))
    assert targets[0].tolist()[3:] == [-100] * 3 and (targets[1] != -100).all()  # 很 好 <eos>, then padding
    assert torch.allclose(logits[0, :3], alone[0], atol=1e-5)  # right padding changes nothing before it
    loss = F.cross_entropy(logits[:1].flatten(0, 1), targets[:1].flatten(), ignore_index=-100)
    assert loss.item() == pytest.approx(F.cross_entropy(alone[0], alone_targets[0]).item(), rel=1e-5)


def test_distinct_n_and_copy_rate_against_hand_counts() -> None:
    assert distinct_n(["好好好", "好的"], 1) == pytest.approx(2 / 5)  # 好 好 好 好 的: 2 distinct of 5
    assert distinct_n(["好好好", "好的"], 2) == pytest.approx(2 / 3)  # 好好 好好 好的
    assert distinct_n(["好"], 2) == 0.0
    assert copy_rate(["很好", "不好", "很好"], ["很好", "一般"]) == pytest.approx(2 / 3)
    assert copy_rate([], ["很好"]) == 0.0


def test_fit_logs_samples_and_predict_writes_reviews_per_label_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    fit = kexue("run", "cond_lm", *TINY, *QUICK)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "test/ppl" in fit.stdout
    run = next(tmp_path.glob("runs/cond_lm/*"))
    samples = (run / "samples.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[1] for line in samples] == ["neg", "neg", "pos", "pos"]
    ckpt = next(run.glob("checkpoints/best-*.ckpt"))
    (tmp_path / "labels.txt").write_text("pos\nneg\t3\npos 2\n", encoding="utf-8")
    pred = kexue("predict", "cond_lm", "--ckpt_path", str(ckpt), "--data.predict_path", "labels.txt",
                 "--model.generation.top_k", "5", "--model.generation.max_new_tokens", "8", "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = [line.split("\t") for line in pred.stdout.splitlines()]  # one line per label line, nothing else
    assert [(row[0], len(row) - 1) for row in lines] == [("pos", 1), ("neg", 3), ("pos", 2)]
    assert all(len(text) <= 8 for row in lines for text in row[1:])
    from kexue.cli import main

    capsys.readouterr()  # decoding is the user's at predict (runtime_arguments): greedy is one review per label
    assert main(["predict", "cond_lm", "--ckpt_path", str(ckpt), "--data.predict_path", "labels.txt",
                 "--model.generation.do_sample", "false", "--model.generation.max_new_tokens", "8", "--logger", "none",
                 "--trainer.default_root_dir", str(tmp_path / "greedy")]) == 0
    greedy = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(row[0], len(set(row[1:]))) for row in greedy] == [("pos", 1), ("neg", 1), ("pos", 1)]
    assert greedy[0][1] == greedy[2][1] and greedy != lines  # the argmax, not the sampled reviews


def test_a_bad_label_line_is_one_line_and_a_bert_folder_trains(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("pos\nhappy\n", encoding="utf-8")
    proc = kexue("predict", "cond_lm", "--untrained", "true", *TINY, "--data.predict_path", "labels.txt",
                 "--logger", "none")
    assert_one_line_error(proc, "labels.txt:2", "happy")
    folder = bert_folder(tmp_path / "bert")
    preset = ["--config", "cond_lm_bert_folder", "--model.bert.path", str(folder), "--data.tokenizer.path", str(folder)]
    proc = kexue("fit", "cond_lm", *preset, "--trainer.fast_dev_run", "true")
    assert_one_line_error(proc, "data.max_length=64", "32 positions")
    proc = kexue("fit", "cond_lm", *preset[:4], "--data.tokenizer", "kexue.models.BertCharTokenizer", "--data.max_length",
                 "32", "--trainer.fast_dev_run", "true")
    assert_one_line_error(proc, "ids but the network's embedding has")  # the corpus's characters, the folder's rows
    (tmp_path / "reviews.txt").write_text("".join(f"{t}\t{label}\n" for t, label in zip(TEXTS, "pos neg pos neg".split())),
                                          encoding="utf-8")
    files = [f"--data.{s}_path=reviews.txt" for s in ("train", "val", "test")]
    fit = kexue("run", "cond_lm", *preset, "--model.bert.condition_dim", "4",
                "--model.generation.max_new_tokens", "8", "--data.max_length", "32", *files, *QUICK)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "test/ppl" in fit.stdout
