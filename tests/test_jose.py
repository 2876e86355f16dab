"""JoSE (https://kexue.fm/archives/7063): the Riemannian SGD step against a brute-force reference, the hinge loss and
its gradient against hand computations, and the task through the CLI on a tiny four-topic corpus."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kexue.datamodules.skipgram import SkipGramDataModule
from kexue.lightning_modules.jose import JoSE, spherical_hinge_loss
from kexue.optim import RiemannianSGD, sphere_sgd_step
from kexue.platform.cli import main
from kexue.text.vectors import load_word2vec_format


def _reference_step(x: list[float], g: list[float], lr: float, scaled: bool) -> list[float]:
    """Project, step, renormalise, one row in plain Python floats."""
    gx = sum(a * b for a, b in zip(g, x))
    tangent = [gi - gx * xi for gi, xi in zip(g, x)]
    scale = 1 + gx / math.sqrt(sum(a * a for a in g)) if scaled else 1.0
    moved = [xi - lr * scale * ti for xi, ti in zip(x, tangent)]
    norm = math.sqrt(sum(a * a for a in moved))
    return [a / norm for a in moved]


def _unit(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("scaled", [False, True])
def test_sphere_step_matches_brute_force_and_stays_on_the_sphere(scaled: bool) -> None:
    x, g = _unit((6, 4), 0), 3 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = sphere_sgd_step(x, g, lr=0.3, cosine_scaling=scaled)
    want = torch.tensor([_reference_step(a.tolist(), b.tolist(), 0.3, scaled) for a, b in zip(x, g)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(6, dtype=torch.float64))
    assert not torch.allclose(got, x)
    # a purely radial gradient has no tangent part: the point stays; the scale reads its direction
    torch.testing.assert_close(sphere_sgd_step(x, -2 * x, 0.3, scaled), x)


def test_cosine_scaling_is_one_minus_cos_of_x_and_the_descent_direction() -> None:
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, -1.0]], dtype=torch.float64)  # -g = (-1, 1): 135 degrees from x, scale 1 + 1/sqrt(2)
    plain, scaled = sphere_sgd_step(x, g, 0.1, False), sphere_sgd_step(x, g, 0.1, True)
    angle = lambda y: math.atan2(float(y[0, 1]), float(y[0, 0]))  # noqa: E731
    assert angle(plain) == pytest.approx(math.atan(0.1))  # x - 0.1 * (0, -1) = (1, 0.1)
    assert angle(scaled) == pytest.approx(math.atan(0.1 * (1 + 1 / math.sqrt(2))))


def test_optimizer_on_sparse_and_dense_gradients_matches_the_step() -> None:
    torch.manual_seed(0)
    table = nn.Embedding(7, 3, sparse=True)
    with torch.no_grad():
        table.weight.copy_(_unit((7, 3), 2).float())
    dense = nn.Parameter(_unit((2, 5, 3), 3).float())
    before, dense_before = table.weight.detach().clone(), dense.detach().clone()
    ids = torch.tensor([1, 4, 1, 6])  # row 1 twice: its gradients add up
    weights = torch.randn(4, 3)
    dense_grad = torch.randn(2, 5, 3)
    dense_grad[0, 2] = 0  # a zero gradient leaves its row alone
    opt = RiemannianSGD([{"params": [table.weight]}, {"params": [dense], "cosine_scaling": False}], lr=0.2)
    ((table(ids) * weights).sum() + (dense * dense_grad).sum()).backward()
    opt.step()
    assert table.weight.grad.is_sparse
    summed = torch.zeros(7, 3).index_add_(0, ids, weights)  # (7, 3): the dense form of the sparse gradient
    for row in range(7):
        want = before[row] if row not in (1, 4, 6) else torch.tensor(
            _reference_step(before[row].tolist(), summed[row].tolist(), 0.2, True))
        torch.testing.assert_close(table.weight[row].detach(), want.float(), rtol=1e-5, atol=1e-6)
    flat, flat_grad, flat_before = dense.detach().view(-1, 3), dense_grad.view(-1, 3), dense_before.view(-1, 3)
    for row in range(10):
        want = flat_before[row] if row == 2 else torch.tensor(
            _reference_step(flat_before[row].tolist(), flat_grad[row].tolist(), 0.2, False))
        torch.testing.assert_close(flat[row], want.float(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rows of size >= 2"):
        RiemannianSGD([nn.Parameter(torch.ones(4, 1))])


def test_loss_equals_the_hand_computed_value() -> None:
    s = math.sqrt(0.5)
    u = torch.tensor([[1.0, 0.0], [s, s]])
    v = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]], [[0.6, 0.8], [s, s]]])  # (2, 2, 2)
    # tuple 0: cos(u,v)=0, cos(u,d)=1; noise (0,1): 1 + 0 -> 0.15 - 1 + 1 = 0.15; noise (-1,0): 0 - 1 -> hinge 0
    # tuple 1: cos(u,v)=cos(u,d)=s; noise (.6,.8): .6 + .8 -> 0.15 - 2s + 1.4 = 0.1358; noise = u itself: 0.15
    got = spherical_hinge_loss(u, v, d, neg, margin=0.15)
    torch.testing.assert_close(got, torch.tensor([0.15, 0.15 - 2 * s + 1.4 + 0.15]))
    # separate hinges (the JoSE code), each m - cos(u, .) + cos(u', .) clamped at 0:
    # tuple 0: v: .15 - 0 + 1 = 1.15, d: .15 - 1 + 0 -> 0; noise (-1,0): v: .15 - 0 + 0 = .15, d: .15 - 1 - 1 -> 0
    # tuple 1: noise (.6,.8): v: .15 - s + .6 -> 0.0429, d: .15 - s + .8 = 0.2429; noise = u: .15 + .15
    got = spherical_hinge_loss(u, v, d, neg, margin=0.15, hinge="separate")
    torch.testing.assert_close(got, torch.tensor([1.15 + 0.15, (0.75 - s) + (0.95 - s) + 0.3]))


def test_loss_gradient_is_the_hand_derived_euclidean_one() -> None:
    """Active hinge: d/du = -(v + d), d/du' = v + d, d/dv = d/dd = u' - u. The cosines are dot products, so the
    gradient keeps its radial part (a loss that renormalised would give the tangent part only)."""
    u, v, d = (_unit((1, 5), seed).requires_grad_() for seed in (10, 11, 12))
    neg = _unit((1, 1, 5), 13).requires_grad_()
    loss = spherical_hinge_loss(u, v, d, neg, margin=10.0)  # margin 10 keeps the hinge active
    loss.sum().backward()
    torch.testing.assert_close(u.grad, -(v + d).detach())
    torch.testing.assert_close(neg.grad[:, 0], (v + d).detach())
    torch.testing.assert_close(v.grad, (neg[:, 0] - u).detach())
    torch.testing.assert_close(d.grad, (neg[:, 0] - u).detach())
    assert float(spherical_hinge_loss(u, v, d, neg, margin=-10.0).detach()) == 0.0


def test_separate_hinges_train_what_is_inside_their_margin() -> None:
    """u = d = (1, 0), v = u' = (0, 1): the context hinge is active (0.15 - 0 + 1), the paragraph's is not
    (0.15 - 1 + 0): the paragraph gets no gradient; the joint hinge (0.15 - 1 + 1) trains all four."""
    u, d = torch.tensor([[1.0, 0.0]], requires_grad=True), torch.tensor([[1.0, 0.0]], requires_grad=True)
    v, neg = torch.tensor([[0.0, 1.0]], requires_grad=True), torch.tensor([[[0.0, 1.0]]], requires_grad=True)
    spherical_hinge_loss(u, v, d, neg, 0.15, hinge="separate").sum().backward()
    torch.testing.assert_close(u.grad, torch.tensor([[0.0, -1.0]]))  # -v
    torch.testing.assert_close(neg.grad, torch.tensor([[[0.0, 1.0]]]))  # v
    torch.testing.assert_close(v.grad, torch.tensor([[-1.0, 1.0]]))  # u' - u
    torch.testing.assert_close(d.grad, torch.zeros(1, 2))
    for x in (u, v, d, neg):
        x.grad = None
    spherical_hinge_loss(u, v, d, neg, 0.15, hinge="joint").sum().backward()
    torch.testing.assert_close(u.grad, torch.tensor([[-1.0, -1.0]]))  # -(v + d)
    torch.testing.assert_close(d.grad, torch.tensor([[-1.0, 1.0]]))  # u' - u


def _brute_force_hinges(u: list[float], v: list[float], d: list[float], noise: list[list[float]], margin: float,
                        hinge: str) -> list[float]:
    """The JoSE hinge terms of one tuple in plain Python (one per noise word, two with separate hinges); on the unit
    sphere cosines are dot products."""
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    if hinge == "joint":
        return [max(0.0, margin - cos(u, v) - cos(u, d) + cos(n, v) + cos(n, d)) for n in noise]
    return [max(0.0, margin - cos(u, x) + cos(n, x)) for n in noise for x in (v, d)]


@pytest.mark.parametrize("hinge", ["joint", "separate"])
def test_model_loss_is_the_brute_force_hinge_of_its_own_tables(hinge: str) -> None:
    """JoSE.forward gathers u from the word table (center and noise), v from the context table and d from the
    paragraph table: each tuple's loss equals the hinge computed by hand from those rows and the drawn noise."""
    torch.manual_seed(0)
    model = JoSE(vocab_size=6, words=list("abcdef"), num_paragraphs=3, dim=4, negative=3, margin=0.2, hinge=hinge,
                 counts=[5, 4, 3, 3, 2, 1])
    center, context, paragraph = torch.tensor([0, 1, 2, 5, 3]), torch.tensor([1, 0, 4, 2, 3]), torch.tensor([0, 2, 1, 1, 0])
    torch.manual_seed(7)
    got = model(center, context, paragraph).detach()  # (5,)
    torch.manual_seed(7)  # the same draw of the noise words as forward's
    noise = torch.multinomial(model.noise, 5 * 3, replacement=True).view(5, 3).tolist()
    u, v, d = (t.weight.detach().double().tolist() for t in (model.word, model.context, model.paragraph))
    terms = [_brute_force_hinges(u[c], v[x], d[p], [u[n] for n in noise[b]], 0.2, hinge)
             for b, (c, x, p) in enumerate(zip(center.tolist(), context.tolist(), paragraph.tolist()))]
    torch.testing.assert_close(got.double(), torch.tensor([sum(t) for t in terms], dtype=torch.float64),
                               rtol=1e-5, atol=1e-6)
    flat = [x for t in terms for x in t]
    assert min(flat) == 0.0 < max(flat)  # both sides of the hinge's corner are met


def test_bad_arguments_are_value_errors() -> None:
    for kwargs, fragment in (({"dim": 1}, "dim must be >= 2"), ({"margin": -0.1}, "margin"),
                             ({"num_paragraphs": None}, "num_paragraphs")):
        with pytest.raises(ValueError, match=fragment):
            JoSE(**{"vocab_size": 3, "words": ["a", "b", "c"], "num_paragraphs": 2, **kwargs})
    with pytest.raises(ValueError, match="data.paragraphs needs data.mode skipgram"):
        SkipGramDataModule(paragraphs=True, mode="cbow")


TOPICS = [[a + b + "zz" for b in "efghijkl"] for a in "abcd"]  # 4 topics of 8 words; words never cross topics


def _topic_corpus(tmp_path: Path) -> Path:
    """200 lines, line ``i`` of topic ``i % 4``, 10 words drawn from its topic."""
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(TOPICS[i % 4], size=10)) for i in range(200)]
    path = tmp_path / "topics.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _hinge_activity(ckpt: Path, corpus: Path, margin: float) -> tuple[float, float]:
    """Shares of active hinges of a trained JoSE checkpoint, by brute force over every tuple of adjacent words
    ``(u, v)`` of each corpus line ``d`` against every word of the other topics as noise ``u'``: the joint hinge
    ``m - cos(u, v) - cos(u, d) + cos(u', v) + cos(u', d) > 0`` and the paragraph's term alone,
    ``m - cos(u, d) + cos(u', d) > 0``."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    index = {w: i for i, w in enumerate(checkpoint["vocabulary"])}
    u_table, v_table, d_table = (checkpoint["state_dict"][f"{name}.weight"].double().numpy()
                                 for name in ("word", "context", "paragraph"))
    joint, paragraph = [], []
    for line_no, line in enumerate(corpus.read_text(encoding="utf-8").splitlines()):
        ids = [index[w] for w in line.split()]
        noise = u_table[[index[w] for t, topic in enumerate(TOPICS) if t != line_no % 4 for w in topic]]  # (24, D)
        d = d_table[line_no]  # (D,)
        for a, b in zip(ids[:-1], ids[1:]):
            u, v = u_table[a], v_table[b]  # (D,) each
            joint.append(margin - u @ v - u @ d + noise @ v + noise @ d > 0)  # (24,)
            paragraph.append(margin - u @ d + noise @ d > 0)  # (24,)
    return float(np.mean(joint)), float(np.mean(paragraph))


@pytest.mark.parametrize("hinge", ["joint", "separate"])
def test_task_separates_topics_keeps_unit_vectors_and_reloads(
    hinge: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = ["--logger", "none", "--trainer.enable_progress_bar=false"]
    args = ["run", "jose", *common, "--trainer.max_epochs", "3", "--data.paths", f"[{_topic_corpus(tmp_path)}]",
            "--data.min_count", "1", "--data.sample", "0", "--model.dim", "8", "--data.batch_size", "128",
            "--model.hinge", hinge]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # Issue 29: no evaluation word is in this corpus, so no figure is printed, only why (and the coverage).
    assert "test/wordsim353 not computed: no pair has both words in the vocabulary " \
           "(test/wordsim353_coverage 0.0000)" in lines and "test/wordsim353_coverage 0.0000" in lines
    assert any(line.startswith("test/analogy not computed: no question") for line in lines)
    words, vectors = load_word2vec_format(lines[-1])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paragraphs, pvectors = load_word2vec_format(lines[-2].removeprefix("paragraph vectors: "))
    assert len(paragraphs) == 200
    np.testing.assert_allclose(np.linalg.norm(pvectors, axis=1), 1.0, atol=1e-5)
    topic = np.array(["abcd".index(w[0]) for w in words])  # (V,)
    sims = vectors @ vectors.T - 3 * np.eye(len(words))  # (V, V) cosines, a word not its own neighbour
    neighbours = np.argsort(-sims, axis=1)[:, :7]  # (V, 7): as many as a word has topic mates
    precision = (topic[neighbours] == topic[:, None]).mean()
    # A hinge ranks, it does not set cosines: the margin (0.15) stops pushing once a pair is clearly apart, so
    # words of other topics may stay at a cosine of 0.5 and more; their rank is what is trained. Chance: 0.22;
    # measured 0.78 (joint: the paragraph vectors, hardly trained, blur the scores) and above 0.9 (separate).
    assert precision > (0.9 if hinge == "separate" else 0.6), precision
    centroids = np.stack([vectors[topic == t].mean(0) for t in range(4)])  # (4, D)
    nearest = (pvectors @ centroids.T).argmax(1)  # (200,): the topic whose words each paragraph is nearest
    ckpt = next(Path(lines[-1]).parent.rglob("last*.ckpt"))
    joint, paragraph = _hinge_activity(ckpt, tmp_path / "topics.txt", margin=0.15)
    found = (nearest == np.arange(200) % 4).mean()  # chance 0.25
    if hinge == "separate":  # the JoSE code's paragraph hinge keeps training d: paragraphs find their topic
        assert found > 0.9 and paragraph < 0.2, (found, paragraph)
    else:
        # The joint hinge stops training a paragraph once its words' context cosines clear the margin: training
        # cleared nearly every joint hinge (measured 4%), while the paragraph's own term, alone, is still inside
        # its margin for most tuples (measured 59%; 10% after the separate hinges).
        assert joint < 0.1 and paragraph > 0.4, (joint, paragraph)
    assert main(["test", "jose", *common, "--ckpt_path", str(ckpt)]) == 0  # no corpus: sizes from the checkpoint
    reloaded = capsys.readouterr().out.strip().splitlines()[-1]
    np.testing.assert_array_equal(load_word2vec_format(reloaded)[1], vectors)


def test_batches_without_paragraphs_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["fit", "jose", "--logger", "none", "--trainer.fast_dev_run=1", "--data.paragraphs", "false",
            "--data.paths", f"[{_topic_corpus(tmp_path)}]", "--data.min_count", "1"]
    assert main(args) == 2
    assert "set data.paragraphs true" in capsys.readouterr().err
