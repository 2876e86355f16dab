"""Word-vector losses against hand computations, export/load against gensim, evaluation against scipy,
and the tasks' bad-input errors and export through the CLI on a tiny user corpus."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.stats import spearmanr

from kexue.data.packages import gensim_test_file
from kexue.datamodules.skipgram import SkipGramDataModule
from kexue.datamodules.word_vectors import CooccurrenceDataModule
from kexue.errors import UsageError
from kexue.lightning_modules.simpler_glove import SimplerGloVe
from kexue.lightning_modules.svd_vectors import SVDVectors
from kexue.lightning_modules.word2vec import Word2Vec
from kexue.losses import (
    cbow_negative_sampling,
    glove_weight,
    negative_sampling_loss,
    simpler_glove_loss,
    skipgram_negative_sampling,
)
from kexue.metrics import SpearmanCorrelation
from kexue.platform.cli import main
from kexue.text.vectors import (
    analogy_accuracy,
    load_word2vec_format,
    nearest_neighbours,
    pair_similarities,
    read_word_pairs,
    save_word2vec_format,
    svd_word_vectors,
    word_similarity,
)
from tests.conftest import assert_one_line_error, kexue


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_sgns_loss_matches_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    inputs, positive, negatives = (
        torch.randn(3, 4, generator=g),
        torch.randn(3, 4, generator=g),
        torch.randn(3, 2, 4, generator=g),
    )
    got = negative_sampling_loss(inputs, positive, negatives)
    for b in range(3):
        dot = lambda u, v: sum(float(x) * float(y) for x, y in zip(u, v))  # noqa: E731
        expected = -math.log(_sigmoid(dot(inputs[b], positive[b])))
        expected -= sum(math.log(_sigmoid(-dot(inputs[b], negatives[b, k]))) for k in range(2))
        assert got[b].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("pairs,groups", [(10, 10), (10, 3), (7, 1), (12, 4)])
def test_fused_skipgram_matches_autograd_on_gathered_rows(pairs: int, groups: int) -> None:
    """The hand-written sparse backward against autograd through plain indexing; groups of ceil(B/G) pairs share
    a noise row (the last group ragged when G does not divide B)."""
    g = torch.Generator().manual_seed(pairs * 10 + groups)
    inp, out = torch.randn(30, 6, generator=g), torch.randn(30, 6, generator=g)
    context, target = torch.randint(30, (pairs,), generator=g), torch.randint(30, (pairs,), generator=g)
    noise = torch.randint(30, (groups, 4), generator=g)
    weights = torch.rand(pairs, generator=g)  # a non-uniform upstream gradient

    fused_inp, fused_out = inp.clone().requires_grad_(), out.clone().requires_grad_()
    fused = skipgram_negative_sampling(fused_inp, fused_out, context, target, noise)
    (fused * weights).sum().backward()
    assert fused_inp.grad.is_sparse and fused_out.grad.is_sparse

    ref_inp, ref_out = inp.clone().requires_grad_(), out.clone().requires_grad_()
    per_pair_noise = noise.repeat_interleave(-(-pairs // groups), 0)[:pairs]  # (B, K)
    ref = negative_sampling_loss(ref_inp[context], ref_out[target], ref_out[per_pair_noise])
    (ref * weights).sum().backward()
    torch.testing.assert_close(fused, ref)
    torch.testing.assert_close(fused_inp.grad.to_dense(), ref_inp.grad)
    torch.testing.assert_close(fused_out.grad.to_dense(), ref_out.grad)


@pytest.mark.parametrize("windows,groups", [(6, 6), (7, 3)])
def test_fused_cbow_matches_autograd_on_window_means(windows: int, groups: int) -> None:
    """CBOW's fused path against autograd through a naive per-window mean, -1 padding and an empty window
    included (its input is the zero vector). The input rows follow word2vec's rule: each word of a window gets
    the gradient of the window's mean, summed over its occurrences."""
    g = torch.Generator().manual_seed(windows * 10 + groups)
    inp, out = torch.randn(20, 5, generator=g), torch.randn(20, 5, generator=g)
    contexts = torch.randint(20, (windows, 4), generator=g)
    contexts[0, 2:] = -1
    contexts[1, 0] = contexts[1, 1]  # a word twice in one window counts twice
    contexts[2] = -1
    target, noise = torch.randint(20, (windows,), generator=g), torch.randint(20, (groups, 3), generator=g)
    weights = torch.rand(windows, generator=g)

    fused_inp, fused_out = inp.clone().requires_grad_(), out.clone().requires_grad_()
    fused = cbow_negative_sampling(fused_inp, fused_out, contexts, target, noise)
    (fused * weights).sum().backward()

    ref_out = out.clone().requires_grad_()
    means = []
    for row in contexts:
        words = [int(w) for w in row if w >= 0]
        means.append(torch.stack([inp[w] for w in words]).mean(0) if words else torch.zeros(5))
    means = torch.stack(means).requires_grad_()
    per_window_noise = noise.repeat_interleave(-(-windows // groups), 0)[:windows]  # (B, K)
    ref = negative_sampling_loss(means, ref_out[target], ref_out[per_window_noise])
    (ref * weights).sum().backward()
    expected_inp = torch.zeros_like(inp)
    for b, row in enumerate(contexts):
        for w in row:
            if w >= 0:
                expected_inp[w] += means.grad[b]
    torch.testing.assert_close(fused, ref)
    torch.testing.assert_close(fused_inp.grad.to_dense(), expected_inp)
    torch.testing.assert_close(fused_out.grad.to_dense(), ref_out.grad)
    with pytest.raises(ValueError, match="contexts must be"):
        cbow_negative_sampling(inp, out, contexts[:, 0], target, noise)


def test_simpler_glove_loss_matches_formula() -> None:
    rng = np.random.default_rng(0)
    x = np.array([[0, 3, 1], [3, 0, 7], [1, 7, 2]], dtype=float)  # symmetric counts
    v = rng.normal(size=(3, 2))
    total, marg = x.sum(), x.sum(1) / x.sum()
    expected = sum(
        min(1.0, (x[i, j] / 5.0) ** 0.75) * (v[i] @ v[j] - math.log(x[i, j] / total / marg[i] / marg[j])) ** 2
        for i in range(3)
        for j in range(3)
        if x[i, j] > 0
    )
    i, j = np.nonzero(x)
    xs = torch.tensor(x[i, j])
    log_pmi = xs.log() - math.log(total) - torch.tensor(np.log(marg[i])) - torch.tensor(np.log(marg[j]))
    vt = torch.tensor(v)
    got = simpler_glove_loss(vt[i], vt[j], log_pmi, glove_weight(xs, 5.0)).sum()
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert glove_weight(torch.tensor([10.0]), 5.0, cap=False).item() == pytest.approx(2**0.75)


def test_export_loads_in_gensim_and_round_trips(tmp_path: Path) -> None:
    keyed = pytest.importorskip("gensim.models").KeyedVectors
    words, vectors = ["北京", "king", "queen"], np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    path = save_word2vec_format(tmp_path / "v.txt", words, torch.tensor(vectors))
    kv = keyed.load_word2vec_format(str(path), binary=False)
    assert kv.index_to_key == words
    np.testing.assert_allclose(kv.vectors, vectors, rtol=1e-5)
    got_words, got = load_word2vec_format(path)
    assert got_words == words and np.allclose(got, vectors, rtol=1e-5)
    (tmp_path / "bad.txt").write_text("2 3\na 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.txt:3: expected a word and 3 numbers"):
        load_word2vec_format(tmp_path / "bad.txt")


def test_similarity_matches_scipy_and_metric_class() -> None:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(8)]
    vectors = torch.tensor(rng.normal(size=(8, 4)))
    pairs = [(f"w{a}", f"w{b}", float(rng.random())) for a, b in rng.integers(0, 8, size=(12, 2))] + [
        ("w1", "oov", 1.0)
    ]
    rho, coverage = word_similarity(vectors, words, pairs)
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    cos = [float(unit[int(a[1:])] @ unit[int(b[1:])]) for a, b, _ in pairs[:-1]]
    assert rho == pytest.approx(spearmanr(cos, [s for _, _, s in pairs[:-1]]).statistic, abs=1e-5)
    assert coverage == pytest.approx(12 / 13)
    metric = SpearmanCorrelation()
    preds, target = pair_similarities(vectors, words, pairs)
    metric.update(preds[:5], target[:5])
    metric.update(preds[5:], target[5:])
    assert metric.compute().item() == pytest.approx(rho, abs=1e-5)


def test_analogy_and_neighbours_brute_force() -> None:
    rng = np.random.default_rng(2)
    words = ["man", "woman", "king", "queen", "apple", "pear", "car"]
    vectors = torch.tensor(rng.normal(size=(7, 6)))
    vectors[3] = vectors[2] - vectors[0] + vectors[1] + 0.01  # queen = king - man + woman
    questions = [("man", "woman", "king", "queen"), ("apple", "pear", "car", "king"), ("man", "x", "king", "queen")]
    unit = (vectors / vectors.norm(dim=1, keepdim=True)).numpy()
    correct = 0
    for q in questions[:2]:
        a, b, c, d = (words.index(w) for w in q)
        target = unit[b] - unit[a] + unit[c]
        scores = {i: unit[i] @ target / np.linalg.norm(target) for i in range(7) if i not in (a, b, c)}
        correct += max(scores, key=scores.get) == d
    acc, coverage = analogy_accuracy(vectors, words, questions)
    assert acc == correct / 2 and coverage == pytest.approx(2 / 3) and correct >= 1
    near = nearest_neighbours(vectors, words, "king", k=3)
    sims = {w: float(unit[i] @ unit[2]) for i, w in enumerate(words) if w != "king"}
    assert [w for w, _ in near] == sorted(sims, key=sims.get, reverse=True)[:3]


def _tiny_corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    vocab = ["king", "queen", "man", "woman", "war", "music", "computer", "science", "the", "of"]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(" ".join(rng.choice(vocab, size=12)) for _ in range(60)) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("word2vec", ["--model.dim", "8", "--data.batch_size", "64"]),
        ("word2vec", ["--model.dim", "8", "--data.batch_size", "64", "--model.mode", "cbow"]),
        ("svd_vectors", ["--model.dim", "4"]),
        ("simpler_glove", ["--model.dim", "8", "--data.batch_size", "32"]),
    ],
)
def test_task_exports_vectors_on_user_corpus(
    task: str, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _tiny_corpus(tmp_path)
    args = [
        "run",
        task,
        "--logger",
        "none",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar=false",
        "--data.paths",
        f"[{corpus}]",
        "--data.min_count",
        "1",
        "--data.workers",
        "2",
        *extra,
    ]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith("vectors.txt")
    words, vectors = load_word2vec_format(last)
    state = torch.load(next(Path(last).parent.rglob("*.ckpt")), weights_only=True)["state_dict"]
    table = state[{"word2vec": "inp.weight", "svd_vectors": "embeddings", "simpler_glove": "emb.weight"}[task]]
    assert len(words) == 10 and np.abs(vectors).sum() > 0
    np.testing.assert_allclose(vectors, table.numpy(), rtol=1e-5, atol=1e-7)  # the trained table, 6 digits a number


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    base = ["run", "svd_vectors", "--logger", "none", "--trainer.enable_progress_bar=false"]
    assert main([*base, "--data.paths", f"[{empty}]"]) == 2
    assert "empty corpus" in capsys.readouterr().err
    assert main([*base, "--data.paths", f"[{_tiny_corpus(tmp_path)}]", "--data.min_count", "100000"]) == 2
    assert "leaves no vocabulary" in capsys.readouterr().err
    proc = kexue(*base, "--data.paths", f"[{tmp_path / 'missing.txt'}]", timeout=120)
    assert_one_line_error(proc, "missing.txt", "file not found")


def test_svd_word_vectors_match_dense_svd_and_are_seeded() -> None:
    rng = np.random.default_rng(3)
    low_rank = (rng.normal(size=(60, 6)) * [9.0, 7.0, 5.0, 3.0, 2.0, 1.0]) @ rng.normal(size=(6, 40))  # (60, 40)
    matrix = scipy.sparse.csr_matrix(low_rank + 1e-3 * rng.normal(size=(60, 40)))
    u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)  # the reference: numpy's exact dense SVD
    for power in (0.5, 1.0):
        got = svd_word_vectors(matrix, 4, eig_power=power)
        assert got.shape == (60, 4) and got.dtype == np.float32
        want = u[:, :4] * s[:4] ** power
        signs = np.sign((got * want).sum(axis=0))  # singular vectors are defined up to sign
        np.testing.assert_allclose(got * signs, want, atol=1e-3 * s[0] ** power)
    assert np.array_equal(svd_word_vectors(matrix, 4, seed=5), svd_word_vectors(matrix, 4, seed=5))
    assert svd_word_vectors(matrix, 100).shape == (60, 40)  # the rank is capped by the matrix
    with pytest.raises(ValueError, match="dim must be >= 1"):
        svd_word_vectors(matrix, 0)


def test_cooccurrence_batches_carry_the_whole_matrix_pmi(tmp_path: Path) -> None:
    data = CooccurrenceDataModule(paths=[str(_tiny_corpus(tmp_path))], min_count=1, window=2, batch_size=None)
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert len(batches) == 1  # batch_size None: the whole matrix in one batch
    rows, cols, counts, log_pmi = (t.numpy() for t in batches[0])
    dense = np.zeros((data.vocab_size, data.vocab_size))
    sentences = [line.split() for line in (tmp_path / "tiny.txt").read_text(encoding="utf-8").splitlines()]
    index = {w: i for i, w in enumerate(data.words)}
    for sentence in sentences:  # the reference: every ordered pair of positions 1..2 apart, counted by hand
        for a in range(len(sentence)):
            for b in range(len(sentence)):
                if 1 <= abs(a - b) <= 2:
                    dense[index[sentence[a]], index[sentence[b]]] += 1
    np.testing.assert_allclose(counts, dense[rows, cols])
    assert len(rows) == np.count_nonzero(dense)
    total, marginal = dense.sum(), dense.sum(axis=1)
    want = np.log(dense[rows, cols] / total / (marginal[rows] / total * marginal[cols] / total))
    np.testing.assert_allclose(log_pmi, want, rtol=1e-5)


def _fit_without_datamodule(model: L.LightningModule, loader: object, epochs: int = 1) -> None:
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)  # no DataModule: a model reading it would fail here


def test_models_train_on_batches_alone_and_svd_ignores_the_batch_size(tmp_path: Path) -> None:
    corpus = str(_tiny_corpus(tmp_path))
    sizes = {}
    for batch_size in (None, 7):
        data = CooccurrenceDataModule(paths=[corpus], min_count=1, batch_size=batch_size)
        data.setup("fit")
        model = SVDVectors(vocab_size=data.vocab_size, words=data.words, dim=3)
        _fit_without_datamodule(model, data.train_dataloader())
        sizes[batch_size] = model.vectors().clone()
    # the epoch's end factorises the same matrix whatever the batches were: same seeded SVD, same vectors
    torch.testing.assert_close(sizes[None], sizes[7], atol=1e-4, rtol=1e-4)
    glove = SimplerGloVe(vocab_size=data.vocab_size, words=data.words, dim=4)
    before = glove.vectors().detach().clone()
    _fit_without_datamodule(glove, data.train_dataloader())
    assert not torch.equal(before, glove.vectors().detach())
    pairs = SkipGramDataModule(paths=[corpus], min_count=1, batch_size=32)
    w2v = Word2Vec(vocab_size=pairs.vocab_size, words=pairs.words, counts=pairs.counts,
                   steps_per_epoch=pairs.steps_per_epoch, dim=4)
    want = torch.tensor(pairs.counts, dtype=torch.float64) ** 0.75
    torch.testing.assert_close(w2v.noise.double(), want / want.sum(), rtol=1e-6, atol=0)
    _fit_without_datamodule(w2v, pairs.train_dataloader())
    assert torch.isfinite(w2v.vectors()).all()


def test_svd_validation_sees_the_factorised_vectors(tmp_path: Path) -> None:
    data = CooccurrenceDataModule(paths=[str(_tiny_corpus(tmp_path))], min_count=1, batch_size=None)
    data.setup("fit")
    model = SVDVectors(vocab_size=data.vocab_size, words=data.words, dim=3)
    seen = []

    class Probe(L.Callback):
        def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            seen.append(float(module.vectors().abs().sum()))

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[Probe()])
    trainer.fit(model, train_dataloaders=data.train_dataloader(), val_dataloaders=data.val_dataloader())
    assert len(seen) == 1 and seen[0] > 0  # Lightning validates before on_train_epoch_end: not on zeros
    # validation scored the DataModule's wordsim353 dataset: the figures of the vectors looked up word by word
    rho, coverage = word_similarity(model.vectors(), data.words, read_word_pairs(gensim_test_file("wordsim353.tsv")))
    logged = trainer.callback_metrics
    assert float(logged["val/wordsim353_coverage"]) == pytest.approx(coverage) and coverage > 0
    assert float(logged["val/wordsim353"]) == pytest.approx(rho, abs=1e-6, nan_ok=True)  # NaN: < 3 known pairs


def test_checkpoint_alone_scores_and_exports_the_same_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _tiny_corpus(tmp_path)
    common = ["--logger", "none", "--trainer.enable_progress_bar=false"]
    args = ["run", "word2vec", *common, "--trainer.max_epochs", "1", "--data.paths", f"[{corpus}]",
            "--data.min_count", "1", "--model.dim", "8", "--data.batch_size", "64"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    trained = out[-1]
    ckpt = next(Path(trained).parent.rglob("last*.ckpt"))
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["vocab_size"] == 10
    assert "words" not in checkpoint["hyper_parameters"] and len(checkpoint["vocabulary"]) == 10
    # no corpus on this command line: the model's size, vocabulary and noise come from the checkpoint
    assert main(["test", "word2vec", *common, "--ckpt_path", str(ckpt)]) == 0
    tested = capsys.readouterr().out.strip().splitlines()
    exported = tested[-1]
    assert exported != trained
    (words, vectors), (want_words, want_vectors) = load_word2vec_format(exported), load_word2vec_format(trained)
    assert words == want_words and np.array_equal(vectors, want_vectors)
    # The word lists were encoded with the checkpoint's 10 words (the DataModule's saved state), not with the default
    # corpus's: the same scores and coverages as after training, and those of the exported vectors.
    figures = [dict(line.split(maxsplit=1) for line in lines if line.startswith("test/")) for lines in (out, tested)]
    assert figures[0] == figures[1]
    pairs = read_word_pairs(gensim_test_file("wordsim353.tsv"))
    rho, coverage = word_similarity(torch.from_numpy(vectors), words, pairs)
    assert float(figures[1]["test/wordsim353_coverage"]) == pytest.approx(coverage, abs=1e-4) and 0 < coverage < 0.05
    if math.isnan(rho):  # fewer than 3 known pairs: no Spearman, the line says why (issue 29)
        assert figures[1]["test/wordsim353"].startswith("not computed: fewer than 3 pairs have both words")
    else:
        assert float(figures[1]["test/wordsim353"]) == pytest.approx(rho, abs=1e-4)


def test_empty_paths_list_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = kexue("run", "svd_vectors", "--logger", "none", "--data.paths", "[]", cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, "data.paths is an empty list")


def test_vocabulary_in_the_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    model = SVDVectors(vocab_size=2, words=list(np.array(["a", "b"])), dim=1)  # numpy.str_, as a cached corpus gives
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["vocabulary"] == ["a", "b"]
