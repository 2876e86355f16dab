"""WMD / WRD (kexue.distances) against hand-solved cases, a direct ``ot.emd2`` and gensim's ``wmdistance``;
the correlation metric against scipy."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import pearsonr, spearmanr

from kexue.distances import (
    bag_of_vectors,
    cosine_of_means,
    word_mover_distance,
    word_mover_distance_batch,
    word_rotator_distance,
    word_rotator_distance_batch,
)
from kexue.metrics import SimilarityCorrelation, SpearmanCorrelation, similarity_correlation


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def random_pair(seed: int, n: int = 6, m: int = 9, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------- hand-solved


def test_wmd_hand_solved() -> None:
    # Both halves of x's mass must go to y's single point: 0.5 * 1 + 0.5 * sqrt(2).
    assert word_mover_distance(t([[0, 0], [1, 0]]), t([[0, 1]])).item() == pytest.approx(0.5 + 0.5 * math.sqrt(2))
    # Masses 3/4, 1/4 against 1/2, 1/2 at the same two points: 1/4 travels distance 2.
    d = word_mover_distance(t([[0, 0], [2, 0]]), t([[0, 0], [2, 0]]), [3, 1], [1, 1])
    assert d.item() == pytest.approx(0.5)
    assert word_mover_distance(t([[1, 2]]), t([[1, 2]])).item() == 0.0


def test_wrd_hand_solved() -> None:
    # Norm weights 1/3, 2/3; y = one point along x_1: the 2/3 of x_2 (orthogonal, 1 - cos = 1) must move.
    assert word_rotator_distance(t([[1, 0], [0, 2]]), t([[3, 0]])).item() == pytest.approx(2 / 3)
    # The same words in another order and scale: WRD is order- and scale-free.
    assert word_rotator_distance(t([[1, 0], [0, 1]]), t([[0, 5], [5, 0]])).item() == pytest.approx(0.0, abs=1e-12)
    # Opposite directions: the largest distance, 2.
    assert word_rotator_distance(t([[1, 1]]), t([[-2, -2]])).item() == pytest.approx(2.0)


# ----------------------------------------------------------------------------- against a direct ot.emd2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wmd_matches_direct_emd2(seed: int) -> None:
    x, y = random_pair(seed)
    rng = np.random.default_rng(seed)
    a, b = rng.random(len(x)) + 0.1, rng.random(len(y)) + 0.1
    ref = ot.emd2(a / a.sum(), b / b.sum(), cdist(x.numpy(), y.numpy()))
    assert word_mover_distance(x, y, a, b).item() == pytest.approx(ref, abs=1e-10)
    uniform = ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), cdist(x.numpy(), y.numpy()))
    assert word_mover_distance(x, y).item() == pytest.approx(uniform, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrd_matches_direct_emd2(seed: int) -> None:
    x, y = random_pair(seed)
    nx, ny = x.norm(dim=1).numpy(), y.norm(dim=1).numpy()
    ref = ot.emd2(nx / nx.sum(), ny / ny.sum(), cdist(x.numpy(), y.numpy(), metric="cosine"))
    assert word_rotator_distance(x, y).item() == pytest.approx(ref, abs=1e-10)


def test_zero_vector_carries_no_mass_in_wrd() -> None:
    x, y = random_pair(3)
    padded = torch.cat([x, torch.zeros(1, x.shape[1], dtype=x.dtype)])
    assert word_rotator_distance(padded, y).item() == pytest.approx(word_rotator_distance(x, y).item(), abs=1e-12)


def test_sinkhorn_is_an_option_not_the_default() -> None:
    x, y = random_pair(4)
    exact, approx = word_mover_distance(x, y).item(), word_mover_distance(x, y, reg=0.05).item()
    assert approx != exact and approx == pytest.approx(exact, rel=0.05)
    assert word_rotator_distance(x, y, reg=0.01).item() == pytest.approx(word_rotator_distance(x, y).item(), abs=0.05)


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_match_the_loop(workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 pairs of ~60 x 60 words: over the threshold at which the batch goes to the thread pool.
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(int(n), 8, generator=g, dtype=torch.float64) for n in torch.randint(40, 80, (30,), generator=g)]
    ys = [torch.randn(int(n), 8, generator=g, dtype=torch.float64) for n in torch.randint(40, 80, (30,), generator=g)]
    ws = [torch.rand(len(x), generator=g, dtype=torch.float64) + 0.1 for x in xs]
    import kexue.distances as kd

    chunks = []
    run_chunk = kd._run_chunk
    monkeypatch.setattr(kd, "_run_chunk", lambda job: chunks.append(len(job[1])) or run_chunk(job))
    wmd = word_mover_distance_batch(xs, ys, x_weights=ws, workers=workers)
    wrd = word_rotator_distance_batch(xs, ys, workers=workers)
    assert len(chunks) == (2 if workers == 1 else 16) and sum(chunks) == 60  # the pool took the work when asked
    assert wmd.shape == wrd.shape == (30,)
    for k in range(30):
        assert wmd[k].item() == pytest.approx(word_mover_distance(xs[k], ys[k], ws[k]).item(), abs=1e-10)
        assert wrd[k].item() == pytest.approx(word_rotator_distance(xs[k], ys[k]).item(), abs=1e-10)


# ----------------------------------------------------------------------------- gradients


def test_wmd_gradient_matches_finite_differences() -> None:
    x, y = random_pair(5, n=4, m=5, d=3)
    # A generic problem has a unique optimal plan, locally constant: WMD is smooth in x there.
    assert torch.autograd.gradcheck(lambda v: word_mover_distance(v, y), (x.clone().requires_grad_(),), eps=1e-6)
    assert torch.autograd.gradcheck(lambda v: word_rotator_distance(v, y), (x.clone().requires_grad_(),), eps=1e-6)


def test_batch_is_differentiable_when_asked() -> None:
    x, y = random_pair(6)
    xg = x.clone().requires_grad_()
    out = word_rotator_distance_batch([xg, xg], [y, y[:3]])
    out.sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    assert word_mover_distance(x, y).grad_fn is None  # no grad asked, none built


# ----------------------------------------------------------------------------- gensim's wmdistance


def test_wmd_equals_gensim_wmdistance() -> None:
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    kv = KeyedVectors(vector_size=12)
    kv.add_vectors(words, rng.normal(size=(40, 12)))
    index = {w: i for i, w in enumerate(kv.index_to_key)}
    unit = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)  # gensim's norm=True convention
    for _ in range(10):
        # Repeated words (bag-of-words weights) and out-of-vocabulary words (dropped by both).
        doc1 = list(rng.choice(words[:25], size=rng.integers(3, 15))) + ["oov"]
        doc2 = list(rng.choice(words[15:], size=rng.integers(3, 15))) + ["zzz", "oov"]
        x, cx = bag_of_vectors(doc1, index, unit)
        y, cy = bag_of_vectors(doc2, index, unit)
        ours = word_mover_distance(torch.from_numpy(x), torch.from_numpy(y), cx, cy).item()
        assert abs(ours - kv.wmdistance(doc1, doc2)) < 1e-6


def test_bag_of_vectors_counts_and_drops_oov() -> None:
    table = np.arange(12.0).reshape(4, 3)
    x, c = bag_of_vectors(["b", "a", "b", "nope", "d"], {"a": 0, "b": 1, "d": 3}, table)
    np.testing.assert_array_equal(x, table[[1, 0, 3]])
    np.testing.assert_array_equal(c, [2, 1, 1])


def test_cosine_of_means() -> None:
    x, y = random_pair(7)
    mx, my = x.numpy().mean(0), y.numpy().mean(0)
    ref = mx @ my / np.linalg.norm(mx) / np.linalg.norm(my)
    assert cosine_of_means([x], [y]).item() == pytest.approx(ref)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, y, fragment",
    [
        (torch.zeros(0, 3), torch.ones(2, 3), "empty text"),
        (torch.ones(2, 3), torch.ones(2, 4), "same vector dimension"),
        (torch.ones(3), torch.ones(2, 3), "2-D"),
    ],
)
def test_bad_shapes(x: torch.Tensor, y: torch.Tensor, fragment: str) -> None:
    for fn in (word_mover_distance, word_rotator_distance):
        with pytest.raises(ValueError, match=fragment):
            fn(x, y)


def test_bad_weights_and_zero_texts() -> None:
    x, y = random_pair(8)
    with pytest.raises(ValueError, match="shape"):
        word_mover_distance(x, y, x_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        word_mover_distance(x, y, x_weights=-torch.ones(len(x)))
    with pytest.raises(ValueError, match="sum to 0"):
        word_mover_distance(x, y, y_weights=torch.zeros(len(y)))
    with pytest.raises(ValueError, match="only zero vectors"):
        word_rotator_distance(torch.zeros(2, 5), y)
    with pytest.raises(ValueError, match="pair 1: y has only zero vectors"):
        word_rotator_distance_batch([x, x], [y, torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="pair 1: y is an empty text"):
        word_mover_distance_batch([x, x], [y, torch.zeros(0, 5)])
    with pytest.raises(ValueError, match="same number of texts"):
        word_mover_distance_batch([x, x], [y])


# ----------------------------------------------------------------------------- correlation metric


def test_similarity_correlation_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    human = rng.integers(0, 5, size=200).astype(float)  # many ties, as in rating data
    preds = human + rng.normal(size=200) * 2
    preds[:20] = preds[0]  # ties in the predictions too
    metric = SimilarityCorrelation()
    for chunk in np.array_split(np.arange(200), 7):
        metric.update(torch.from_numpy(preds[chunk]), torch.from_numpy(human[chunk]))
    pearson, spearman = metric.compute().tolist()
    spearman_only = SpearmanCorrelation()
    spearman_only.update(torch.from_numpy(preds), torch.from_numpy(human))
    assert spearman_only.compute().item() == pytest.approx(spearmanr(preds, human)[0], abs=1e-6)
    assert pearson == pytest.approx(pearsonr(preds, human)[0], abs=1e-6)
    assert spearman == pytest.approx(spearmanr(preds, human)[0], abs=1e-6)
    assert similarity_correlation(torch.from_numpy(preds), torch.from_numpy(human)).tolist() == pytest.approx(
        [pearson, spearman]
    )
    with pytest.raises(ValueError, match="same shape"):
        similarity_correlation(torch.ones(3), torch.ones(4))
