"""Task language_model: batches, perplexity, a checkpoint that predicts with any decoding option (its tokenizer in
it), a pretrained GPT-2 folder continued through the preset, size checks, and bad input as one line
(kexue.fm/archives/6933, /7292)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kexue.datamodules.language_model import LanguageModelDataModule
from kexue.errors import UsageError
from kexue.lightning_modules.language_model import LanguageModel
from kexue.models import CausalLM, CharTokenizer, PretrainedCausalLM, PretrainedTokenizer
from kexue.models.lm_tokenizers import char_tokenizer
from kexue.nn import TransformerConfig
from kexue.text.vocabulary import char_vocabulary

from .conftest import assert_one_line_error, kexue

TINY = ["--model.net.config.dim", "16", "--model.net.config.num_layers", "1", "--model.net.config.num_heads", "2",
        "--model.net.config.ffn_dim", "32", "--model.net.config.max_length", "64", "--data.max_length", "64"]
QUICK = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
         "--trainer.max_epochs", "1", "--logger", "none", "--trainer.enable_progress_bar", "false"]


def test_char_tokenizer_round_trip_and_unknown_characters() -> None:
    vocab = char_vocabulary(["好好的", "不好"], min_count=1)
    assert vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and vocab[4] == "好"  # most frequent first
    tok = char_tokenizer(vocab)
    assert tok.decode(tok.encode("不好的")) == "不好的"
    assert tok.encode("好x") == [4, 3]
    with pytest.raises(ValueError, match="starts with"):
        char_tokenizer(["a", "b"])


def test_the_default_tokenizer_learns_the_training_split_and_saves_what_it_learnt(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("好好的\n不好\n", encoding="utf-8")
    (tmp_path / "other.txt").write_text("坏\n", encoding="utf-8")
    data = LanguageModelDataModule(train_path=str(tmp_path / "train.txt"), val_path=str(tmp_path / "other.txt"),
                                   test_path=str(tmp_path / "other.txt"))
    assert data.hparams.tokenizer["init_args"]["vocabulary"] is None  # nothing learnt yet
    tok = data.fitted_tokenizer
    expected = char_vocabulary(["好好的", "不好"], min_count=2)  # min_count 2 by default: only 好 is kept
    assert tok.vocabulary == expected == ["<pad>", "<bos>", "<eos>", "<unk>", "好"] and data.vocab_size == 5
    saved = data.hparams.tokenizer
    assert saved == {"class_path": "kexue.models.lm_tokenizers.CharTokenizer",
                     "init_args": {"vocabulary": expected, "min_count": 2}}
    rebuilt = LanguageModelDataModule(tokenizer=saved).fitted_tokenizer  # what predict from a checkpoint does
    assert rebuilt.encode("好坏") == tok.encode("好坏") == [4, 3]


def test_collate_right_pads_training_and_left_pads_prompts() -> None:
    data = LanguageModelDataModule(tokenizer=CharTokenizer(char_vocabulary(["很好的酒店"])), max_length=5)
    batch = data.collate([("很好", None), ("很好的酒店啊", None)])
    tok = data.fitted_tokenizer
    好, 很 = tok.encode("好")[0], tok.encode("很")[0]
    assert batch["ids"].tolist()[0] == [1, 很, 好, 2, 0] and batch["padding"][0].tolist() == [1, 1, 1, 1, 0]
    assert len(batch["ids"][1]) == 5 and batch["padding"][1].all()  # cut at max_length
    prompts = data.collate([("好", data.predict_target), ("很好", data.predict_target)])
    assert prompts["ids"].tolist() == [[0, 1, 好], [1, 很, 好]] and prompts["texts"] == ["好", "很好"]
    assert prompts["padding"].tolist() == [[False, True, True], [True, True, True]]


def test_perplexity_is_exp_of_the_mean_next_token_loss() -> None:
    torch.manual_seed(0)
    tok = char_tokenizer(char_vocabulary(["很好的酒店", "不好"]))
    net = CausalLM(tok.vocab_size, TransformerConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0, max_length=64))
    model = LanguageModel(net, tok)
    data = LanguageModelDataModule(tokenizer=tok)
    batch = data.collate([("很好的", None), ("酒店不好啊", None)])
    model.eval()
    with torch.no_grad():
        logits, targets = model._logits_targets(batch)
        model.val_ppl.update(logits, targets)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    assert (targets != -100).sum() == 3 + 1 + 5 + 1  # every real next token (characters + <eos>), no padding
    assert model.val_ppl.compute().item() == pytest.approx(math.exp(loss.item()), rel=1e-5)


def test_fit_writes_samples_and_the_checkpoint_predicts_with_any_decoding(tmp_path: Path) -> None:
    fit = kexue("run", "language_model", *TINY, *QUICK)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "test/ppl" in fit.stdout
    run = next(tmp_path.glob("runs/language_model/*"))
    samples = (run / "samples.txt").read_text(encoding="utf-8").splitlines()
    assert len(samples) == 4 and all(line.startswith("epoch 0\t") for line in samples)
    ckpt = next(run.glob("checkpoints/best-*.ckpt"))
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # the tokenizer is in it as plain values
    model_side, data_side = saved["hyper_parameters"]["tokenizer"], saved["datamodule_hyper_parameters"]["tokenizer"]
    assert model_side == data_side and model_side["class_path"].endswith("CharTokenizer")
    assert model_side["init_args"]["vocabulary"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert saved["hyper_parameters"]["net"]["init_args"]["vocab_size"] == len(model_side["init_args"]["vocabulary"])
    restored = LanguageModel.load_from_checkpoint(ckpt)  # in Python too: both components rebuilt from plain values
    assert restored.tokenizer.decode(restored.tokenizer.encode("很好")) == "很好"
    assert restored.net.embed.num_embeddings == len(model_side["init_args"]["vocabulary"])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("这个酒店\n\n很好\n", encoding="utf-8")
    beam = ["--model.generation.num_beams", "3", "--model.generation.do_sample", "false"]
    nucleus = ["--model.generation.top_p", "0.9", "--model.generation.temperature", "0.7"]
    for options in (beam, nucleus):
        pred = kexue("predict", "language_model", "--ckpt_path", str(ckpt), "--data.predict_path", str(prompts),
                     "--model.generation.max_new_tokens", "6", *options, "--logger", "none")
        assert pred.returncode == 0, pred.stderr[-3000:]
        lines = pred.stdout.splitlines()  # one line per prompt line, whatever a library prints
        assert [line.split("\t")[0] for line in lines] == ["这个酒店", "", "很好"]
        assert all(len(line.split("\t")[1]) <= 6 for line in lines)
    too_long = kexue("predict", "language_model", "--ckpt_path", str(ckpt), "--model.generation.max_new_tokens", "64",
                     "--logger", "none")
    assert_one_line_error(too_long, "max_new_tokens=64", "context of 64 tokens")


def tiny_gpt2(folder: Path) -> None:
    """A random GPT-2 folder written by transformers, with a byte-level BPE trained on a few lines."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the hotel was clean", "the room was small and dirty"] * 20, vocab_size=300,
                            special_tokens=["<|endoftext|>"])
    folder.mkdir()
    bpe.save_model(str(folder))
    config = transformers.GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=64, n_embd=16, n_layer=1,
                                     n_head=2, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)


def test_a_gpt2_folder_is_continued_and_predicts_without_a_lightning_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    tiny_gpt2(folder)
    (tmp_path / "train.txt").write_text("the hotel was clean\nthe room was small\n" * 8, encoding="utf-8")
    files = [f"--data.{s}_path={tmp_path / 'train.txt'}" for s in ("train", "val", "test")]
    preset = ["--config", "gpt2", "--model.net.source", str(folder), "--data.tokenizer.source", str(folder)]
    fit = kexue("run", "language_model", *preset, *files, "--data.max_length", "64", *QUICK)
    assert fit.returncode == 0, fit.stderr[-3000:]
    (tmp_path / "prompts.txt").write_text("the hotel\n", encoding="utf-8")
    pred = kexue("predict", "language_model", *preset, "--data.predict_path", str(tmp_path / "prompts.txt"),
                 "--data.max_length", "64", "--model.generation.max_new_tokens", "4", "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert len(pred.stdout.splitlines()) == 1 and pred.stdout.startswith("the hotel\t")


def test_greedy_through_the_cli_equals_transformers_greedy_on_a_gpt2_folder(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """``--model.generation.do_sample false`` over the task's sampling default is the argmax (no top-k, no
    repetition penalty), the prompt is the ids GPT2TokenizerFast gives (no BOS: the folder does not ask for one),
    ``<|endoftext|>`` is never printed, and ``num_return`` prints that many samples on the prompt's one line."""
    transformers = pytest.importorskip("transformers")
    from kexue.cli import main

    folder = tmp_path / "gpt2"
    tiny_gpt2(folder)
    prompts = ["the hotel", "the room was", "dirty"]
    (tmp_path / "prompts.txt").write_text("".join(f"{p}\n" for p in prompts), encoding="utf-8")
    preset = ["--config", "gpt2", "--model.net.source", str(folder), "--data.tokenizer.source", str(folder),
              "--data.predict_path", str(tmp_path / "prompts.txt"), "--data.max_length", "64",
              "--model.generation.max_new_tokens", "12", "--logger", "none", "--trainer.default_root_dir",
              str(tmp_path / "runs")]
    capsys.readouterr()
    assert main(["predict", "language_model", *preset, "--model.generation.do_sample", "false",
                 "--model.generation.repetition_penalty", "1.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tok = transformers.GPT2TokenizerFast.from_pretrained(str(folder))
    model = transformers.GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    expected = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                             eos_token_id=0, pad_token_id=0)[0, ids.shape[1]:]
        expected.append(f"{prompt}\t{' '.join(tok.decode(out, skip_special_tokens=True).split())}")
    assert lines == expected
    assert main(["predict", "language_model", *preset, "--model.generation.num_return", "3",
                 "--model.generation.temperature", "3.0"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == prompts and all(len(row) == 4 for row in rows)
    assert not any("<|endoftext|>" in text for row in rows for text in row)
    assert len({text for row in rows for text in row[1:]}) > 3  # independent samples


def test_the_factory_checks_the_data_sizes_once(tmp_path: Path) -> None:
    """A network from one source and a tokenizer from another, examples longer than the learned positions: one
    UsageError each, from the factory (or CausalLM) itself, whichever tokenizer or task linked the sizes."""
    folder = tmp_path / "gpt2"
    tiny_gpt2(folder)
    tok = PretrainedTokenizer(str(folder))
    net = PretrainedCausalLM(str(folder), vocab_size=tok.vocab_size, max_length=64)
    assert type(net) is CausalLM and net.pretrained == str(folder) and net.vocab_size == tok.vocab_size
    with pytest.raises(UsageError, match=f"the tokenizer has {tok.vocab_size + 1} ids but the network's embedding "
                                         f"has {tok.vocab_size} rows"):
        PretrainedCausalLM(str(folder), vocab_size=tok.vocab_size + 1)
    with pytest.raises(UsageError, match="data.max_length=65 exceeds the 64 positions"):
        PretrainedCausalLM(str(folder), max_length=65)
    learned = TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="learned", max_length=16)
    with pytest.raises(UsageError, match=r"data.max_length=17 exceeds the 16 positions of the network \(model.net\)"):
        CausalLM(10, learned, max_length=17)
    CausalLM(10, TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="rotary", max_length=16),
             max_length=17)  # rotary positions have no end
    proc = kexue("fit", "language_model", "--model.net", "kexue.models.PretrainedCausalLM", "--model.net.source",
                 str(folder), "--data.max_length", "64", "--trainer.fast_dev_run", "true", "--logger", "none")
    assert_one_line_error(proc, "the tokenizer has", f"({folder})")  # the reviews' characters vs a 300-id BPE


def test_the_presets_name_the_factory_and_the_tokenizer() -> None:
    proc = kexue("fit", "language_model", "--config", "smollm2", "--print_config")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "class_path: kexue.models.PretrainedCausalLM" in text and "class_path: kexue.models.PretrainedTokenizer" in text
    assert text.count("source: smollm2") == 2


def test_bad_checkpoints_and_prompt_files_are_one_line(tmp_path: Path) -> None:
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    proc = kexue("fit", "language_model", "--config", "gpt2", "--model.net.source", str(other),
                 "--data.tokenizer.source", str(other), "--trainer.fast_dev_run", "true")
    assert_one_line_error(proc, "data.tokenizer.source", "model_type='bert'")
    missing = str(tmp_path / "missing")
    proc = kexue("fit", "language_model", "--config", "gpt2", "--model.net.source", missing,
                 "--data.tokenizer.source", missing, "--trainer.fast_dev_run", "true")
    assert_one_line_error(proc, "missing")
    bad = tmp_path / "prompts.txt"
    bad.write_bytes("好\n".encode("gbk"))
    ckpt_free = ["--untrained", "true", *TINY]
    proc = kexue("predict", "language_model", "--data.predict_path", str(bad), *ckpt_free, "--logger", "none")
    assert_one_line_error(proc, "prompts.txt")
