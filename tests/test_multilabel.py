"""ZLPR (kexue.fm/archives/7359) against its formula, softmax cross-entropy and a naive loop; the multilabel task."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kexue.datamodules.multilabel import LABEL_TAGS, MultilabelDataModule, read_multilabel_lines
from kexue.errors import UsageError
from kexue.lightning_modules.multilabel_classifier import MultilabelClassifier
from kexue.losses import (
    MultilabelCategoricalCrossEntropy,
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)
from kexue.platform.cli import main

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
SENTENCES = FIXTURES / "multilabel_sentences.tsv"


def naive_zlpr(scores: list[float], labels: list[int]) -> float:
    """The post's formula term by term: log(1 + Σ_neg e^{s_i}) + log(1 + Σ_pos e^{-s_j})."""
    neg = sum(math.exp(s) for s, y in zip(scores, labels) if not y)
    pos = sum(math.exp(-s) for s, y in zip(scores, labels) if y)
    return math.log(1 + neg) + math.log(1 + pos)


def random_batch(seed: int, B: int = 32, C: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=g, dtype=torch.float64) * 3
    target = (torch.rand(B, C, generator=g) < 0.3).long()
    target[0], target[1] = 0, 1  # a row with no positive and one with no negative
    return logits, target


@pytest.mark.parametrize("seed", [0, 1])
def test_zlpr_matches_naive_loop(seed: int) -> None:
    logits, target = random_batch(seed)
    got = multilabel_categorical_crossentropy(logits, target, reduction="none")
    want = [naive_zlpr(s, y) for s, y in zip(logits.tolist(), target.tolist())]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert multilabel_categorical_crossentropy(logits, target).item() == pytest.approx(sum(want) / len(want))
    assert multilabel_categorical_crossentropy(logits, target, "sum").item() == pytest.approx(sum(want))


def test_zlpr_is_two_softmax_cross_entropies_against_a_zero_class() -> None:
    # The post's reading: each term is softmax CE of a fixed 0 score beating the scores of one set.
    logits, target = random_batch(2, B=3, C=7)
    zero = torch.zeros(1, dtype=logits.dtype)
    for s, y in zip(logits, target.bool()):
        want = F.cross_entropy(torch.cat([zero, s[~y]])[None], torch.tensor([0])) + F.cross_entropy(
            torch.cat([zero, -s[y]])[None], torch.tensor([0])
        )
        assert multilabel_categorical_crossentropy(s, y).item() == pytest.approx(want.item(), rel=1e-12)


def test_zlpr_stable_for_huge_logits() -> None:
    logits = torch.tensor([[1e4, -1e4, -1e4], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]], requires_grad=True)
    target = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    loss = multilabel_categorical_crossentropy(logits, target, reduction="none")
    # right with margin -> 0; wrong -> log(e^{1e4} + e^{1e4}) + log(e^{1e4}) = 2e4 + log 2; no positives -> 1e4 + log 3
    assert loss.tolist() == pytest.approx([0.0, 2e4 + math.log(2), 1e4 + math.log(3)], rel=1e-6)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0].abs().max() < 1e-6 and logits.grad[1, 0] == pytest.approx(-1.0)
    half = multilabel_categorical_crossentropy(logits.detach().bfloat16(), target)
    assert torch.isfinite(half)


def test_zlpr_gradient() -> None:
    logits, target = random_batch(3, B=4, C=5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: multilabel_categorical_crossentropy(x, target), (logits,))


def test_sparse_equals_dense() -> None:
    logits, target = random_batch(4, B=16, C=6)
    K = int(target.sum(1).max())
    ids = torch.full((16, K + 1), -1)  # one more column than needed: padding everywhere
    for row, y in enumerate(target.tolist()):
        pos = [i for i, v in enumerate(y) if v]
        ids[row, : len(pos)] = torch.tensor(pos, dtype=torch.long)
    ids[2, -1] = ids[2, 0] if target[2].any() else -1  # a repeated id counts once
    dense = multilabel_categorical_crossentropy(logits, target, reduction="none")
    assert torch.allclose(sparse_multilabel_categorical_crossentropy(logits, ids, reduction="none"), dense)
    assert torch.allclose(MultilabelCategoricalCrossEntropy(sparse=True)(logits, ids), dense.mean())
    assert torch.allclose(MultilabelCategoricalCrossEntropy()(logits, target.float()), dense.mean())


def test_sparse_exact_where_subtraction_cancels() -> None:
    # Σ_neg = Σ_all - Σ_pos loses every digit when one positive dominates: the mask keeps it exact.
    logits = torch.tensor([[1e4, -2.0, 1.0]], dtype=torch.float64)
    ids = torch.tensor([[0]])
    want = naive_zlpr([-1e9, -2.0, 1.0], [0, 0, 0]) + 0.0  # positive term log(1 + e^{-1e4}) = 0
    assert sparse_multilabel_categorical_crossentropy(logits, ids).item() == pytest.approx(want, rel=1e-12)
    all_lse = F.pad(logits, (1, 0)).logsumexp(-1)
    subtractive = all_lse + torch.log1p(-torch.exp(logits[:, 0] - all_lse))  # the cancelling form
    assert abs(subtractive.item() - want) > 1.0  # the case really is one where subtraction fails


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape"):
        multilabel_categorical_crossentropy(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="out of range"):
        sparse_multilabel_categorical_crossentropy(torch.zeros(2, 3), torch.tensor([[0], [3]]))
    with pytest.raises(ValueError, match="reduction"):
        multilabel_categorical_crossentropy(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")
    with pytest.raises(ValueError, match="unknown loss"):
        MultilabelClassifier(loss="hinge")


def test_embedded_corpus_labels_follow_the_tags() -> None:
    dm = MultilabelDataModule()
    rows = dict(dm.embedded())
    assert len(rows) > 45_000
    L = dm.hparams.labels
    # 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr
    assert [L[i] for i in rows["中共中央总书记、国家主席江泽民"]] == ["person", "organisation"]
    # （/w 一九九七年/t 十二月/t 三十一日/t ）/w
    assert [L[i] for i in rows["（一九九七年十二月三十一日）"]] == ["time"]
    frequency = torch.zeros(len(L))
    for ids in rows.values():
        frequency[list(ids)] += 1
    assert (frequency > 0.03 * len(rows)).all() and (frequency < 0.6 * len(rows)).all()  # every label non-trivial
    subset = MultilabelDataModule(labels=["time", "place"])
    assert [subset.embedded()[i][1] for i in (1, 2)] == [(), (0,)]  # neither (a name), then a date
    with pytest.raises(ValueError, match="at least two"):
        MultilabelDataModule(labels=["place"])
    with pytest.raises(ValueError, match="embedded corpus"):
        MultilabelDataModule(labels=["person", "weather"]).embedded()


def test_reader_and_collate() -> None:
    labels = list(LABEL_TAGS)
    rows = read_multilabel_lines(SENTENCES, labels)
    assert len(rows) == 48 and any(ids == () for _, ids in rows)
    assert rows[1][1] == (labels.index("time"), labels.index("number"))
    batch = MultilabelDataModule().collate(rows[:4])
    assert batch["labels"].shape == (4, 5) and batch["labels"][1].tolist() == [0, 0, 0, 1, 1]
    assert batch["labels"][0].sum() == 0 and batch["labels"].dtype == torch.float32
    # Characters only by default: one id per character, in [1, 2**14), 0 padding after the shorter texts.
    lengths = [min(len(text), 256) for text, _ in rows[:4]]
    assert batch["ids"].shape == (4, max(lengths)) and (batch["ids"] > 0).sum(1).tolist() == lengths
    assert int(batch["ids"].max()) < 2**14
    with pytest.raises(UsageError, match=r"multilabel_bad_label.tsv:2: label 'weather'"):
        read_multilabel_lines(FIXTURES / "multilabel_bad_label.tsv", labels)


def test_user_files_replace_embedded_splits() -> None:
    dm = MultilabelDataModule(labels=list(LABEL_TAGS), train_path=str(SENTENCES), test_path=str(SENTENCES))
    dm.setup("fit")
    fields = [line.rsplit("\t", 1) for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = [(text.strip(), tuple(sorted({list(LABEL_TAGS).index(n.strip()) for n in names.split(",") if n.strip()})))
                for text, names in fields]
    assert dm.splits["train"] == expected == dm.splits["test"]
    assert len(dm.splits["val"]) > 4000  # the one split not given stays the embedded corpus'


def test_classifier_is_its_own_module_with_a_cnn_default() -> None:
    from kexue.lightning_modules.text_classifier import TextClassifier
    from kexue.nn import ConvEncoder

    model = MultilabelClassifier(labels=list("abc"))
    assert not isinstance(model, TextClassifier) and "margin" not in model.hparams
    assert isinstance(model.encoder, ConvEncoder) and model.encoder.embedding.num_embeddings == 2**14
    scores = model(torch.tensor([[3, 4, 0], [5, 0, 0]]))  # (B, T) ids -> (B, L)
    assert scores.shape == (2, 3)


def test_a_label_the_test_split_never_has_gets_no_f1() -> None:
    """Issue 29: torchmetrics gives a label without gold examples an F1 of 0; the task logs it as not computed."""
    import math

    model, logged = MultilabelClassifier(labels=list("abc")), {}
    model.log = lambda name, value, **options: logged.__setitem__(name, value)
    model.test_breakdown.update(torch.tensor([[1, 0, 1], [0, 0, 0]]), torch.tensor([[1, 0, 0], [0, 0, 1]]))
    model.on_test_epoch_end()
    assert logged["test/f1_a"] == 1.0 and logged["test/f1_c"] == 0.0  # c: one gold example, missed
    assert math.isnan(logged["test/f1_b"]) and model.missing_figures == {"test/f1_b": "no test example has the label 'b'"}


def test_decision_rules() -> None:
    scores = torch.tensor([[0.3, -0.2, 0.0, 5.0]])
    zlpr, bce = MultilabelClassifier(labels=list("abcd")), MultilabelClassifier(labels=list("abcd"), loss="bce")
    assert zlpr.decide(scores).tolist() == [[1, 0, 0, 1]] == bce.decide(scores).tolist()


def fit_on_sentences(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """``kexue run multilabel`` in-process on the 48 fixture sentences (all three splits); its test metrics."""
    files = [f"--data.{split}_path={SENTENCES}" for split in ("train", "val", "test")]
    args = ["--logger", "none", "--trainer.max_epochs=12", "--trainer.enable_progress_bar=false",
            "--data.tokenizer.num_buckets=4096", "--data.batch_size=16", "--model.encoder.dropout=0", "--model.lr=0.02", *files]
    assert main(["run", "multilabel", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    return {k: float(v) for k, v in (line.split() for line in out if line.startswith("test/"))}


def test_fit_and_test_on_user_files(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = fit_on_sentences(capsys)
    assert metrics["test/micro_f1"] > 0.8  # memorises its 48 training sentences
    assert {"test/macro_f1", "test/f1_person", "test/f1_organisation"} <= metrics.keys()


def test_checkpoint_alone_predicts_one_line_per_input_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit_on_sentences(capsys)
    ckpt = str(next(tmp_path.glob("runs/multilabel/*/checkpoints/best-*.ckpt")))
    raw = tmp_path / "raw.txt"
    raw.write_text("张万年迟浩田会见彭楚政事迹报告团时强调\n\n今天下雨。\n", encoding="utf-8")
    assert main(["predict", "multilabel", "--ckpt_path", ckpt, "--logger", "none", f"--data.predict_path={raw}"]) == 0
    lines = capsys.readouterr().out.splitlines()  # one line per input line, nothing else
    assert len(lines) == 3, lines
    assert lines[1] == "", lines
    for line in (lines[0], lines[2]):
        chosen, scores = line.split("\t")
        assert chosen == "-" or set(chosen.split(",")) <= set(LABEL_TAGS)
        assert [s.split("=")[0] for s in scores.split()] == list(LABEL_TAGS)
    assert "person" in lines[0].split("\t")[0]  # a training sentence, labelled person


def test_bad_user_files_are_one_line_errors() -> None:
    good = [f"--data.val_path={SENTENCES}", f"--data.test_path={SENTENCES}"]  # spares parsing the corpus
    proc = kexue(
        "fit", "multilabel", "--logger", "none", f"--data.train_path={FIXTURES / 'multilabel_bad_tab.tsv'}", *good
    )
    assert_one_line_error(proc, "multilabel_bad_tab.tsv:2", "no tab")
    proc = kexue("fit", "multilabel", "--logger", "none", "--model.loss", "hinge")
    assert_one_line_error(proc, "hinge")
