"""Tasks cws and ner: span metrics against a hand-computed and a naive reference, the readers and their
errors, the B/M/E/S and B/I/O conversions, the NER corpus rule, featurisation in the DataModule's collate,
the CRF's optimizer group, and predict output through the CLI from a checkpoint alone."""

from __future__ import annotations

import itertools
import re
import zlib
from pathlib import Path

import pytest
import torch

from kexue.data.readers import read_char_tag_lines, read_segmented_lines
from kexue.datamodules.sequence_labeling import (
    EntityDataModule,
    SegmentationDataModule,
    SequenceLabelingDataModule,
    chunk,
    people_daily_entities,
)
from kexue.errors import UsageError
from kexue.metrics import SpanF1, bio_spans, bmes_spans
from kexue.nn import CharConvEncoder
from kexue.registry import import_object
from kexue.text import bio_tags, bmes_tags
from kexue.text.tokenizers import HashedChars

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
BMES = ["B", "M", "E", "S"]
BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    p, r = correct / predicted, correct / gold
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def naive_word_counts(gold: list[str], pred: list[str]) -> tuple[int, int, int]:
    """SIGHAN-style ``(correct, predicted, gold)`` word counts: a predicted word is right when both its
    boundaries are gold boundaries and no gold boundary falls inside it (boundaries as character offsets,
    computed independently of the spans code)."""
    def cuts(words: list[str]) -> list[int]:
        return [0, *itertools.accumulate(map(len, words))]
    g = set(cuts(gold))
    pc = cuts(pred)
    correct = sum(1 for a, b in zip(pc, pc[1:]) if a in g and b in g and not any(a < c < b for c in g))
    return correct, len(pred), len(gold)


def random_segmentation(n: int, g: torch.Generator) -> list[str]:
    cut = [0, *sorted(set(torch.randint(1, n + 1, (3,), generator=g).tolist()) | {n})]
    return ["字" * (b - a) for a, b in zip(cut, cut[1:])]


def ids(tags: list[str], names: list[str]) -> list[int]:
    return [names.index(t) for t in tags]


def test_word_f1_hand_computed() -> None:
    gold, pred = ["我", "爱", "北京", "天安门"], ["我爱", "北京", "天", "安门"]
    metric = SpanF1(BMES)
    metric.update(torch.tensor([ids(bmes_tags(pred), BMES)]), torch.tensor([ids(bmes_tags(gold), BMES)]))
    assert metric.compute().tolist() == pytest.approx([0.25, 0.25, 0.25])  # only 北京 is right
    assert naive_word_counts(gold, pred) == (1, 4, 4)


def test_word_f1_matches_naive_reference_on_random_segmentations() -> None:
    g = torch.Generator().manual_seed(0)
    metric, totals = SpanF1(BMES), [0, 0, 0]
    preds, golds = [], []
    for _ in range(30):
        n = int(torch.randint(1, 12, (1,), generator=g))
        gold, pred = random_segmentation(n, g), random_segmentation(n, g)
        totals = [a + b for a, b in zip(totals, naive_word_counts(gold, pred))]
        golds.append(ids(bmes_tags(gold), BMES) + [-1] * (12 - n))
        preds.append(ids(bmes_tags(pred), BMES) + [-1] * (12 - n))
    metric.update(torch.tensor(preds), torch.tensor(golds))
    assert 0 < totals[0] < min(totals[1:])  # some words right, some wrong: the comparison can fail
    assert metric.compute().tolist() == pytest.approx(list(prf(*totals)))


def test_spans_of_invalid_sequences_are_total() -> None:
    assert bmes_spans(["M", "E", "B", "B", "S", "E"]) == {(0, 2, ""), (2, 3, ""), (3, 4, ""), (4, 5, ""), (5, 6, "")}
    assert bio_spans(["I-PER", "I-PER", "O", "B-LOC", "I-PER", "B-LOC"]) == {
        (0, 2, "PER"), (3, 4, "LOC"), (4, 5, "PER"), (5, 6, "LOC")}


def test_entity_f1_hand_computed() -> None:
    gold = bio_tags(8, [(0, 3, "PER"), (4, 6, "LOC")])
    pred = bio_tags(8, [(0, 3, "PER"), (4, 6, "PER"), (7, 8, "LOC")])  # right, wrong type, spurious
    metric = SpanF1(BIO)
    metric.update(torch.tensor([ids(pred, BIO)]), torch.tensor([ids(gold, BIO)]))
    assert metric.compute().tolist() == pytest.approx([1 / 3, 1 / 2, 0.4])


def test_conversions() -> None:
    assert bmes_tags(["迈向", "的", "一九九八年"]) == ["B", "E", "S", "B", "M", "M", "M", "E"]
    assert bio_tags(5, [(1, 4, "ORG")]) == ["O", "B-ORG", "I-ORG", "I-ORG", "O"]
    assert bmes_spans(bmes_tags(["ab", "c", "def"])) == {(0, 2, ""), (2, 3, ""), (3, 6, "")}
    example = ("abcdef", ids(bmes_tags(["ab", "cde", "f"]), BMES))
    assert [t for t, _ in chunk(example, BMES, 4)] == ["ab", "cdef"]  # cut between words only
    assert [t for t, _ in chunk(example, BMES, 2)] == ["ab", "cde", "f"]  # a word longer than the limit stays whole


def test_readers_and_line_exact_errors(tmp_path: Path) -> None:
    assert read_segmented_lines(FIXTURES / "sighan.txt") == [["迈向", "充满", "希望", "的", "新", "世纪"], ["中共中央", "总书记"]]
    rows = read_char_tag_lines(FIXTURES / "conll.txt", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
    assert [t for t, _ in rows] == ["江泽民在北京", "新华社"] and rows[1][1] == [5, 6, 6]
    with pytest.raises(UsageError, match=r"conll_bad.txt:2: expected 'char tag'"):
        read_char_tag_lines(FIXTURES / "conll_bad.txt", BIO)
    bad = tmp_path / "unknown_tag.txt"
    bad.write_text("江 B-PER\n\n泽 B-XYZ\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"unknown_tag.txt:3: tag 'B-XYZ'"):
        read_char_tag_lines(bad, BIO)
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("迈向 充满\n迈/b 向/e\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"tagged.txt:2: expected space-separated words"):
        read_segmented_lines(tagged)
    with pytest.raises(UsageError, match=r"conll.txt:1: expected space-separated words, found a 'char tag' line"):
        read_segmented_lines(FIXTURES / "conll.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("好 的\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"latin1.txt:2: not UTF-8"):
        read_segmented_lines(latin1)


def test_embedded_corpora_and_fixed_split() -> None:
    cws = SegmentationDataModule()
    cws.setup("fit")
    assert len(cws.splits["train"]) > 15000 and max(len(t) for t, _ in cws.splits["train"]) <= 128
    text, tags, index = cws.splits["test"][0]  # evaluation rows carry their position
    assert len(text) == len(tags) and set(tags) <= {0, 1, 2, 3} and index == 0
    again = SegmentationDataModule()
    again.setup("fit")
    assert again.splits["test"][:5] == cws.splits["test"][:5]
    rows = people_daily_entities()
    assert len(rows) == 19484
    text, spans = rows[1]  # 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr: surname + given name merged
    assert [(text[s:e], label) for s, e, label in spans] == [("中共中央", "ORG"), ("江泽民", "PER")]
    ner = EntityDataModule()
    ner.setup("fit")
    assert ner.hparams.tags[0] == "O" and len(ner.splits["val"]) > 1000


def hashed(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % (buckets - 1) + 1


def test_collate_featurises_into_tensors() -> None:
    dm = SegmentationDataModule(tokenizer=HashedChars(num_buckets=1000))
    batch = dm.collate([("北京", [0, 2], 7), ("好", [3], 8)])
    assert set(batch) == {"ids", "tags", "index"}  # no texts: the model reads ids, whichever tokenizer made them
    assert batch["ids"].tolist() == [
        [[hashed("北", 1000), hashed("\x02北", 1000), hashed("北京", 1000)],
         [hashed("京", 1000), hashed("北京", 1000), hashed("京\x03", 1000)]],
        [[hashed("好", 1000), hashed("\x02好", 1000), hashed("好\x03", 1000)], [0, 0, 0]],
    ]
    assert batch["tags"].tolist() == [[0, 2], [3, -1]] and batch["index"].tolist() == [7, 8]
    unigrams = SegmentationDataModule(tokenizer=HashedChars(num_buckets=1000, bigrams=False))
    raw = unigrams.collate([("", None, 0), ("北京", None, 1)])  # a predict batch, a blank line first
    assert raw["texts"] == ["", "北京"] and "tags" not in raw
    assert raw["ids"].tolist() == [[[0], [0]], [[hashed("北", 1000)], [hashed("京", 1000)]]]
    assert unigrams.num_features == 1 and dm.num_features == 3


def test_featurization_names_are_init_arguments_and_ner_keeps_every_argument() -> None:
    from jsonargparse import ArgumentParser

    for cls in (SegmentationDataModule, EntityDataModule):
        parser = ArgumentParser()
        parser.add_class_arguments(cls, "data")
        defaults = parser.get_defaults().data
        assert set(cls.featurization) <= set(vars(defaults)), cls
        assert {"train_path", "batch_size", "num_workers", "tokenizer"} <= set(vars(defaults)), cls
    ner = EntityDataModule(batch_size=3, tokenizer=HashedChars(bigrams=False))
    assert ner.hparams.format == "conll" and ner.hparams.tags[1] == "B-PER"
    assert ner.hparams.batch_size == 3 and ner.num_features == 1


@pytest.mark.parametrize("name, value", [("batch_size", 0), ("max_length", 0)])
def test_bad_data_values_name_the_option(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"data.{name} must be >= "):
        SequenceLabelingDataModule(**{name: value})
    with pytest.raises(UsageError, match="data.tokenizer.num_buckets must be >= 2"):
        SequenceLabelingDataModule(tokenizer=HashedChars(num_buckets=1))


def run_then_predict(task: str, fixture: str, lines: str, *options: str) -> list[str]:
    """``kexue run TASK`` trained, validated and tested on ``fixture`` with ``options``, then ``kexue predict`` of
    ``lines`` from the best checkpoint alone (no other option): the output lines."""
    train = str(FIXTURES / fixture)
    proc = kexue("run", task, "--data.train_path", train, "--data.val_path", train, "--data.test_path", train,
                 "--trainer.max_epochs=6", "--logger", "csv", "--model.encoder.hidden_dim=16", "--model.lr=0.05",
                 *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/f1", "test/precision", "test/recall"} <= metrics.keys()
    best = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    texts = Path("raw.txt")
    texts.write_text(lines, encoding="utf-8")
    pred = kexue("predict", task, "--ckpt_path", best, "--data.predict_path", str(texts), "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    return pred.stdout.splitlines()


def test_cws_checkpoint_alone_predicts_the_segmentation_it_learned() -> None:
    # Non-default featurisation: predict must take it from the checkpoint (G = 1, 1024 buckets) or the weights
    # would not fit. sighan.txt: 迈向 充满 希望 的 新 世纪 / 中共中央 总书记.
    out = run_then_predict("cws", "sighan.txt", "迈向充满希望的新世纪\n\n中共中央总书记\n",
                           "--data.tokenizer.num_buckets=1024", "--data.tokenizer.bigrams=false")
    assert out == ["迈向 充满 希望 的 新 世纪", "", "中共中央 总书记"]  # one line per input line, blank kept


def test_ner_predict_marks_entities() -> None:
    # conll.txt: 江泽民 PER, 北京 LOC / 新华社 ORG.
    out = run_then_predict("ner", "conll.txt", "江泽民在北京\n\n新华社\n", "--data.tokenizer.num_buckets=1024", "--model.head=memm")
    assert out == ["[江泽民/PER]在[北京/LOC]", "", "[新华社/ORG]"]  # exactly one line per input line


def test_malformed_user_file_is_one_line_error() -> None:
    assert_one_line_error(kexue("fit", "ner", "--data.train_path", str(FIXTURES / "conll_bad.txt"),
                                "--trainer.fast_dev_run=1", "--logger", "none"), "conll_bad.txt:2:", "expected 'char tag'")


def test_crf_transition_lr_multiplier_reaches_the_optimizer() -> None:
    from kexue.lightning_modules.sequence_labeler import SequenceLabeler
    from kexue.nn.encoders import CharConvEncoder

    model = SequenceLabeler(CharConvEncoder(num_embeddings=64, hidden_dim=8), head="crf",
                            transition_lr_multiplier=10.0, lr=1e-3)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    assert any(p is model.chain.transitions for p in groups[1]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    batch = SegmentationDataModule(tokenizer=HashedChars(num_buckets=64)).collate([("北京", [0, 2]), ("好", [3])])
    emissions, mask = model(batch["ids"])
    assert emissions.shape == (2, 2, 4) and mask.tolist() == [[True, True], [True, False]]
    path = model.decode(emissions, mask)
    assert path[1, 1] == -1 and path[1, 0] == 3  # a one-character sentence can only be S under bmes_constraints


def test_default_encoder_is_one_per_model_and_saved_as_its_config() -> None:
    from kexue.lightning_modules.sequence_labeler import SequenceLabeler

    first, second = SequenceLabeler(), SequenceLabeler()
    assert first.encoder is not second.encoder
    assert first.encoder.embedding.weight.data_ptr() != second.encoder.embedding.weight.data_ptr()
    assert import_object(first.hparams.encoder["class_path"]) is CharConvEncoder  # a plain dict, as the CLI saves it


@pytest.mark.parametrize("task", ["cws", "ner"])
def test_featurisation_options_size_the_encoder_through_the_task_links(task: str) -> None:
    from kexue.platform.lightning_cli import KexueCLI
    from kexue.registry import get_task

    cli = KexueCLI(get_task(task), "fit", ["--trainer.logger=false", "--data.tokenizer.bigrams=false",
                                           "--data.tokenizer.num_buckets=512",
                                           "--model.encoder=CharRecurrentEncoder", "--model.encoder.hidden_dim=8"])
    encoder = cli.model.encoder
    assert type(encoder).__name__ == "CharRecurrentEncoder" and encoder.output_dim == 16
    assert encoder.embedding.num_embeddings == 512 and encoder.num_features == 1
    assert cli.model.hparams.tags == cli.datamodule.hparams.tags and len(cli.model.hparams.tags) == (4 if task == "cws" else 7)
    batch = cli.datamodule.collate([("北京", [0, 0]), ("好", [0])])
    assert cli.model(batch["ids"])[0].shape == (2, 2, len(cli.model.hparams.tags))


def test_pieces_and_predict_lines_longer_than_the_encoders_positions_are_refused_before_the_first_batch() -> None:
    """Issue 29: cws / ner pieces (cut at data.max_length) and whole predict lines against the positions of the
    encoder (a BERT folder's, here a stand-in), when the loader is built."""
    from types import SimpleNamespace

    class Folder(torch.nn.Module):
        def input_limit(self) -> tuple[int, str]:
            return 6, "folder: 8 less [CLS] and [SEP]"

    data = SegmentationDataModule(max_length=5, tokenizer=HashedChars(num_buckets=64, bigrams=False))
    data.splits = {"train": data._segmented([["今天", "天气"], ["很", "好"]]),
                   "predict": [("今天天气很好啊", None)]}
    assert max(len(text) for text, _ in data.splits["train"]) == 4  # cut between words
    data.trainer = SimpleNamespace(lightning_module=torch.nn.Sequential(Folder()), world_size=1)
    assert len(data.train_dataloader()) == 1
    with pytest.raises(UsageError, match=r"predict split .*inputs of 7 positions exceed the 6 .*lower the length of"):
        data.predict_dataloader()


def test_span_scores_with_nothing_under_them_are_not_computed() -> None:
    """Issue 29: F1 and recall of a split with no gold entity, precision of a model that found none: NaN logged
    and a reason for the CLI, never the 0 that span_f1's convention gives."""
    import math

    from kexue.metrics import log_span_f1

    class Module:
        def __init__(self) -> None:
            self.logged: dict[str, float] = {}

        def log(self, name: str, value: float, **options: object) -> None:
            self.logged[name] = value

    tags = ["O", "B-PER", "I-PER"]
    metric, module = SpanF1(tags), Module()
    metric.update(torch.tensor([[1, 2, 0]]), torch.tensor([[0, 0, 0]]))  # one predicted entity, no gold one
    log_span_f1(module, metric, "test")
    assert module.logged["test/precision"] == 0.0
    assert math.isnan(module.logged["test/recall"]) and math.isnan(module.logged["test/f1"])
    assert module.missing_figures["test/f1"] == "the test split has no gold spans"
    metric.update(torch.tensor([[0, 0, 0]]), torch.tensor([[1, 2, 0]]))  # the gold entity missed: F1 is a real 0
    log_span_f1(module, metric, "test")
    assert module.logged["test/f1"] == 0.0 and module.logged["test/recall"] == 0.0
    assert math.isnan(module.logged["test/precision"]) and set(module.missing_figures) == {"test/precision"}
