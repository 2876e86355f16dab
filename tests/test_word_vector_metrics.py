"""Word-vector Metrics (kexue.metrics.word_vectors) against gensim's ``evaluate_word_pairs`` /
``evaluate_word_analogies`` and scipy's ``spearmanr`` on the same vectors, split over several updates and over two
DDP processes (whose sampler pads with a repeated row), and the word lists as the DataModules' val/test datasets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.utils.data import DistributedSampler

from kexue.data.packages import gensim_test_file
from kexue.data.word_lists import word_list
from kexue.datamodules.word_vectors import CooccurrenceDataModule
from kexue.metrics import AnalogyAccuracy, WordSimilarity, analogy_score, word_similarity_score
from kexue.tests.helpers import run_in_process_group

WORDS = [f"w{i}" for i in range(40)]


def _vectors(seed: int = 0) -> torch.Tensor:
    """(40, 6) random vectors with planted analogies: w(4k+3) = w(4k+1) - w(4k) + w(4k+2) for k < 5."""
    vectors = torch.randn(40, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    for k in range(5):
        vectors[4 * k + 3] = unit[4 * k + 1] - unit[4 * k] + unit[4 * k + 2]
    return vectors


def _keyed(vectors: torch.Tensor) -> Any:
    keyed = pytest.importorskip("gensim.models").KeyedVectors(vectors.shape[1])
    keyed.add_vectors(WORDS, vectors.numpy())
    return keyed


def _pairs() -> tuple[list[tuple[str, str, float]], torch.Tensor]:
    """25 pairs, 4 with an out-of-vocabulary word, and their ids ``(25, 2)`` (-1 for the unknown word)."""
    rng = np.random.default_rng(1)
    pairs = [(f"w{a}", f"w{b}", float(rng.random() * 10)) for a, b in rng.integers(0, 40, size=(21, 2)) if a != b]
    pairs += [("w1", "nope", 3.0), ("zzz", "w2", 5.0), ("w3", "w5", 7.5), ("qq", "rr", 1.0)]
    index = {w: i for i, w in enumerate(WORDS)}
    return pairs, torch.tensor([[index.get(a, -1), index.get(b, -1)] for a, b, _ in pairs])


def test_word_similarity_matches_gensim_and_scipy_over_split_updates(tmp_path: Path) -> None:
    vectors, (pairs, ids) = _vectors(), _pairs()
    path = tmp_path / "pairs.tsv"
    path.write_text("# word1\tword2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs), encoding="utf-8")
    _, (gensim_rho, _), oov_percent = _keyed(vectors).evaluate_word_pairs(str(path))
    scores = torch.tensor([s for _, _, s in pairs])
    metric = WordSimilarity()
    for part in torch.tensor_split(torch.arange(len(pairs)), 3):  # three updates, as three batches
        metric.update(vectors, ids[part], scores[part])
    rho, coverage = metric.compute().tolist()
    assert rho == pytest.approx(gensim_rho, abs=1e-6)  # float32 vectors, as gensim keeps them
    assert coverage == pytest.approx(1 - oov_percent / 100) and coverage == pytest.approx((len(pairs) - 3) / len(pairs))
    known = [(a, b, s) for a, b, s in pairs if a in WORDS and b in WORDS]
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    cosines = [float(unit[WORDS.index(a)] @ unit[WORDS.index(b)]) for a, b, _ in known]
    assert rho == pytest.approx(spearmanr(cosines, [s for _, _, s in known]).statistic, abs=1e-6)
    few = word_similarity_score(torch.ones(4), torch.arange(4.0), torch.tensor([True, True, False, False]))
    assert math.isnan(few[0]) and few[1] == 0.5  # 2 known pairs rank nothing: not a number, the coverage says why


def _questions() -> list[tuple[str, str, str, str]]:
    """The 5 planted analogies (answerable), 10 random ones, one with an unknown word, one beyond the candidates."""
    rng = np.random.default_rng(2)
    planted = [tuple(f"w{4 * k + j}" for j in range(4)) for k in range(5)]
    random = [tuple(f"w{i}" for i in rng.choice(40, size=4, replace=False)) for _ in range(10)]
    return [*planted, *random, ("w0", "w1", "nope", "w3"), ("w0", "w1", "w2", "w39")]


def test_analogy_accuracy_matches_gensim_with_restricted_candidates(tmp_path: Path) -> None:
    vectors, questions, candidates = _vectors(), _questions(), 30
    path = tmp_path / "questions.txt"
    path.write_text(": planted\n" + "".join(" ".join(q) + "\n" for q in questions), encoding="utf-8")
    gensim_score, sections = _keyed(vectors).evaluate_word_analogies(str(path), restrict_vocab=candidates)
    gensim_answered = len(sections[-1]["correct"]) + len(sections[-1]["incorrect"])
    index = {w: i for i, w in enumerate(WORDS)}
    ids = torch.tensor([[index.get(w, -1) for w in q] for q in questions])  # (17, 4)
    metric = AnalogyAccuracy()
    for part in torch.tensor_split(torch.arange(len(questions)), 4):
        metric.update(vectors, ids[part], candidates)
    accuracy, coverage = metric.compute().tolist()
    assert accuracy == pytest.approx(gensim_score) and 0 < accuracy < 1  # planted right, random (mostly) wrong
    assert coverage == pytest.approx(gensim_answered / len(questions))
    none = analogy_score(torch.tensor([1]), torch.tensor([2]), torch.tensor([False])).tolist()
    assert math.isnan(none[0]) and none[1] == 0.0  # no question known: no accuracy, not 0


N_PAIRS = 25  # odd: DistributedSampler gives both ranks 13 rows, repeating row 0


def _ddp_values(pairs_ids: torch.Tensor, scores: torch.Tensor, questions: torch.Tensor, rank: int | None,
                with_ids: bool) -> list[float]:
    similarity, analogy, vectors = WordSimilarity(), AnalogyAccuracy(), _vectors()
    for data, metric in ((pairs_ids, similarity), (questions, analogy)):
        order = list(range(len(data))) if rank is None else list(
            DistributedSampler(range(len(data)), num_replicas=2, rank=rank, shuffle=False))
        for start in range(0, len(order), 4):
            idx = torch.tensor(order[start : start + 4])  # (b,) dataset indices, the padding's repeat included
            ids = idx if with_ids else None
            if metric is similarity:
                metric.update(vectors, data[idx], scores[idx], ids=ids)
            else:
                metric.update(vectors, data[idx], 30, ids=ids)
    return similarity.compute().tolist() + analogy.compute().tolist()


def _ddp_worker(rank: int) -> dict[bool, list[float]]:
    pairs, ids = _pairs()
    index = {w: i for i, w in enumerate(WORDS)}
    questions = torch.tensor([[index.get(w, -1) for w in q] for q in _questions()])
    scores = torch.tensor([s for _, _, s in pairs])
    return {with_ids: _ddp_values(ids, scores, questions, rank, with_ids) for with_ids in (True, False)}


def test_metrics_under_two_process_ddp_equal_the_one_process_value() -> None:
    pairs, ids = _pairs()
    assert len(pairs) == N_PAIRS
    index = {w: i for i, w in enumerate(WORDS)}
    questions = torch.tensor([[index.get(w, -1) for w in q] for q in _questions()])  # 17 rows: padded too
    expected = _ddp_values(ids, torch.tensor([s for _, _, s in pairs]), questions, None, True)
    results = run_in_process_group(_ddp_worker, 2)
    for rank in range(2):
        assert results[rank][True] == pytest.approx(expected, abs=1e-9)
    assert results[0][False] != pytest.approx(expected, abs=1e-9)  # the repeated rows do change it: the ids matter


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    words = ["king", "queen", "man", "woman", "tiger", "cat", "the", "of"]  # king-queen, tiger-cat in wordsim353
    rng = np.random.default_rng(0)
    path.write_text("\n".join(" ".join(rng.choice(words, size=10)) for _ in range(30)) + "\n", encoding="utf-8")
    return path


def test_datamodule_encodes_the_word_lists_with_its_vocabulary_and_restores_it(tmp_path: Path) -> None:
    data = CooccurrenceDataModule(paths=[str(_corpus(tmp_path))], min_count=1)
    val, test = data.val_dataloader(), data.test_dataloader()
    assert [loader.dataset.name for loader in val] == ["wordsim353"]
    assert [loader.dataset.name for loader in test] == ["wordsim353", "simlex999", "analogy"]
    wordsim = next(iter(val[0]))
    assert wordsim["set"] == "wordsim353" and wordsim["words"].shape == (len(val[0].dataset), 2)
    text = Path(gensim_test_file("wordsim353.tsv")).read_text(encoding="utf-8")
    lines = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    assert len(wordsim["words"]) == len(lines)  # every row kept, the unknown ones as -1
    for (a, b, score), (i, j), got in zip(lines, wordsim["words"].tolist(), wordsim["scores"].tolist()):
        assert (i, j) == (data.words.index(a.lower()) if a.lower() in data.words else -1,
                          data.words.index(b.lower()) if b.lower() in data.words else -1)
        assert got == pytest.approx(float(score))
    assert (wordsim["words"] >= 0).all(-1).sum() >= 2  # tiger-cat, king-queen ... are known
    state = data.state_dict()
    assert state == {"words": data.words}
    fresh = CooccurrenceDataModule(paths=[str(tmp_path / "gone.txt")])  # a corpus that is not there: not read
    fresh.load_state_dict(state)
    restored = next(iter(fresh.val_dataloader()[0]))
    assert torch.equal(restored["words"], wordsim["words"])
    analogy = word_list("analogy", data.words)
    assert analogy.words.shape[1] == 4 and (analogy.words == -1).any()
