"""CRF and MEMM: log-likelihoods and best paths against brute-force enumeration of every tag path on tiny
tag sets, plus pytorch-crf agreement, validation messages, constraints and the lr-multiplier groups.

The brute force is plain Python on floats, written from the definitions, not from the modules' code.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from kexue.nn.crf import ConditionalRandomField, TransitionConstraints, bio_constraints, bmes_constraints
from kexue.nn.memm import MaximumEntropyMarkovModel

KINDS = ["crf", "crf-no-start-end", "memm", "bimemm"]
LENGTHS = [4, 1, 3, 2]  # ragged, right-padded to T = 4


def make(kind: str, num_tags: int, batch_first: bool = True, seed: int = 0) -> torch.nn.Module:
    """A float64 model with parameters large enough that transitions change the answers."""
    if kind.startswith("crf"):
        model = ConditionalRandomField(num_tags, batch_first, start_end_scores=kind == "crf")
    else:
        model = MaximumEntropyMarkovModel(num_tags, batch_first, bidirectional=kind == "bimemm")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model.double()


def batch(num_tags: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """emissions (B, T, K) float64, tags (B, T) with -1 at padding, mask (B, T)."""
    generator = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    emissions = 2 * torch.randn(B, T, num_tags, generator=generator, dtype=torch.float64)  # (B, T, K)
    tags = torch.randint(num_tags, (B, T), generator=generator).masked_fill(~mask, -1)  # (B, T)
    return emissions, tags, mask


# ---- brute force from the definitions ---------------------------------------------------------------

def logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def log_softmax(xs: list[float]) -> list[float]:
    z = logsumexp(xs)
    return [x - z for x in xs]


def params(model: torch.nn.Module) -> dict[str, list]:
    K = model.num_tags
    p = {name: value.tolist() for name, value in model.named_parameters()}
    p.setdefault("start_transitions", [0.0] * K)
    p.setdefault("end_transitions", [0.0] * K)
    return p


def crf_score(p: dict, e: list[list[float]], y: tuple[int, ...]) -> float:
    score = p["start_transitions"][y[0]] + p["end_transitions"][y[-1]] + sum(e[t][y[t]] for t in range(len(y)))
    return score + sum(p["transitions"][y[t - 1]][y[t]] for t in range(1, len(y)))


def brute_llh(model: torch.nn.Module, p: dict, e: list[list[float]], y: tuple[int, ...]) -> float:
    """log P(y | e) of one unpadded sequence; e is (L, K)."""
    K, L = len(e[0]), len(y)
    if isinstance(model, ConditionalRandomField):
        return crf_score(p, e, y) - logsumexp([crf_score(p, e, z) for z in itertools.product(range(K), repeat=L)])
    llh = log_softmax([e[0][j] + p["start_transitions"][j] for j in range(K)])[y[0]]
    for t in range(1, L):
        llh += log_softmax([e[t][j] + p["transitions"][y[t - 1]][j] for j in range(K)])[y[t]]
    if not model.bidirectional:
        return llh
    back = log_softmax([e[L - 1][i] + p["backward_start_transitions"][i] for i in range(K)])[y[L - 1]]
    for t in range(L - 1):
        back += log_softmax([e[t][i] + p["backward_transitions"][i][y[t + 1]] for i in range(K)])[y[t]]
    return (llh + back) / 2


def allowed_paths(K: int, L: int, constraints: TransitionConstraints | None):
    for y in itertools.product(range(K), repeat=L):
        if constraints is None or (constraints.start[y[0]] and constraints.end[y[-1]]
                                   and all(constraints.allowed[a, b] for a, b in zip(y, y[1:]))):
            yield y


# ---- log-likelihood ---------------------------------------------------------------------------------

@pytest.mark.parametrize("num_tags", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_log_likelihood_matches_brute_force(kind: str, num_tags: int) -> None:
    model = make(kind, num_tags)
    emissions, tags, mask = batch(num_tags, LENGTHS)  # tags are -1 at padding: must be ignored
    p = params(model)
    expected = torch.tensor([brute_llh(model, p, emissions[b, :L].tolist(), tuple(tags[b, :L].tolist()))
                             for b, L in enumerate(LENGTHS)], dtype=torch.float64)
    torch.testing.assert_close(model(emissions, tags, mask, reduction="none"), expected)
    torch.testing.assert_close(model(emissions, tags, mask, reduction="sum"), expected.sum())
    torch.testing.assert_close(model(emissions, tags, mask, reduction="mean"), expected.mean())
    torch.testing.assert_close(model(emissions, tags, mask, reduction="token_mean"), expected.sum() / sum(LENGTHS))
    torch.testing.assert_close(model(emissions, tags, mask), expected.sum())  # default "sum", as pytorch-crf
    full = tags[:1]  # T = 4, no mask given
    torch.testing.assert_close(model(emissions[:1], full, reduction="none"), expected[:1])


def test_memm_is_locally_normalised_and_the_crf_is_not() -> None:
    """Both give the paths of a sequence total probability 1; only the MEMM's prefix marginals equal the
    probabilities of the prefixes alone: P(y_0..y_l) does not depend on the emissions after step l."""
    K, T = 3, 3
    emissions = batch(K, [T])[0]  # (1, T, K)
    paths = torch.tensor(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    e = emissions.expand(len(paths), T, K)  # (K^T, T, K)
    for kind, local in (("memm", True), ("crf", False)):
        model = make(kind, K)
        llh = model(e, paths, reduction="none")  # (K^T,)
        torch.testing.assert_close(llh.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
        for length in range(1, T):
            mask = (torch.arange(T) < length).expand(len(paths), T)  # (K^T, T)
            prefix = model(e, paths, mask, reduction="none").view(-1, K ** (T - length))[:, 0]  # (K^length,)
            marginal = llh.view(-1, K ** (T - length)).logsumexp(1)  # (K^length,): summed over continuations
            assert torch.allclose(prefix, marginal) == local, (kind, length)


# ---- decode -----------------------------------------------------------------------------------------

CONSTRAINTS = {
    "none": (3, None),
    "bmes": (4, bmes_constraints(["B", "M", "E", "S"])),
    "bio": (5, bio_constraints(["O", "B-A", "I-A", "B-B", "I-B"])),
}


@pytest.mark.parametrize("constraint", list(CONSTRAINTS))
@pytest.mark.parametrize("kind", KINDS)
def test_decode_matches_brute_force(kind: str, constraint: str) -> None:
    K, constraints = CONSTRAINTS[constraint]
    model = make(kind, K)
    emissions, _, mask = batch(K, LENGTHS, seed=1)
    if constraints is not None:  # make the one-step sequence want a forbidden first tag
        emissions[1, 0, (~constraints.start).nonzero()[0]] += 20
    p = params(model)
    expected = torch.full(mask.shape, -1)
    for b, L in enumerate(LENGTHS):
        e = emissions[b, :L].tolist()
        best = max(allowed_paths(K, L, constraints), key=lambda y: brute_llh(model, p, e, y))
        expected[b, :L] = torch.tensor(best)
    decoded = model.decode(emissions, mask, constraints=constraints)
    assert decoded.dtype == torch.long
    assert torch.equal(decoded, expected)
    if constraints is not None:  # the constraints changed something
        assert not torch.equal(model.decode(emissions, mask), expected)


@pytest.mark.parametrize("kind", ["crf", "bimemm"])
def test_batch_first_false_is_the_transpose(kind: str) -> None:
    emissions, tags, mask = batch(3, LENGTHS)
    tags = tags.clamp(min=0)
    ours, theirs = make(kind, 3, batch_first=True), make(kind, 3, batch_first=False)
    llh = theirs(emissions.transpose(0, 1), tags.t(), mask.t(), reduction="none")
    torch.testing.assert_close(llh, ours(emissions, tags, mask, reduction="none"))
    decoded = theirs.decode(emissions.transpose(0, 1), mask.t())  # (T, B)
    assert torch.equal(decoded.t(), ours.decode(emissions, mask))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_are_finite_and_padding_gets_none(kind: str) -> None:
    model = make(kind, 4).float()
    emissions, tags, mask = batch(4, [6, 2, 5], seed=2)
    emissions = emissions.float().masked_fill(~mask[..., None], float("nan")).requires_grad_()  # nan padding
    loss = -model(emissions, tags, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(emissions.grad).all()
    assert (emissions.grad[~mask] == 0).all() and (emissions.grad[mask] != 0).any()
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all() and (p.grad != 0).any(), name
    assert (model.decode(emissions.detach(), mask)[mask] >= 0).all()


# ---- pytorch-crf ------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("start_end_scores", [True, False])
def test_agrees_with_pytorch_crf(batch_first: bool, start_end_scores: bool) -> None:
    torchcrf = pytest.importorskip("torchcrf")
    K, lengths = 5, [12, 3, 1, 7, 12, 9, 2, 5]
    ours = make("crf" if start_end_scores else "crf-no-start-end", K, batch_first)
    theirs = torchcrf.CRF(K, batch_first=batch_first).double()
    with torch.no_grad():
        theirs.transitions.copy_(ours.transitions)
        theirs.start_transitions.copy_(ours.start_transitions if start_end_scores else torch.zeros(K))
        theirs.end_transitions.copy_(ours.end_transitions if start_end_scores else torch.zeros(K))
    emissions, tags, mask = batch(K, lengths, seed=3)
    tags = tags.clamp(min=0)  # pytorch-crf reads the tags at padded steps too
    if not batch_first:
        emissions, tags, mask = emissions.transpose(0, 1), tags.t(), mask.t()
    for reduction in ("none", "sum", "mean", "token_mean"):
        torch.testing.assert_close(ours(emissions, tags, mask, reduction), theirs(emissions, tags, mask, reduction))
    decoded = ours.decode(emissions, mask)
    decoded = decoded if batch_first else decoded.t()  # (B, T)
    assert [row[row >= 0].tolist() for row in decoded] == theirs.decode(emissions, mask)


@pytest.mark.parametrize("batch_first", [True, False])
def test_swapping_in_pytorch_crf_with_the_same_state_dict_keeps_the_default_loss(batch_first: bool) -> None:
    torchcrf = pytest.importorskip("torchcrf")
    K, lengths = 5, [6, 2, 6, 1, 4]
    ours = make("crf", K, batch_first, seed=7)
    theirs = torchcrf.CRF(K, batch_first=batch_first).double()
    theirs.load_state_dict(ours.state_dict())  # same parameter names and shapes
    emissions, tags, mask = batch(K, lengths, seed=8)
    tags = tags.clamp(min=0)
    if not batch_first:
        emissions, tags, mask = emissions.transpose(0, 1), tags.t(), mask.t()
    loss = -ours(emissions, tags, mask)  # default arguments on both sides
    torch.testing.assert_close(loss, -theirs(emissions, tags, mask))
    torch.testing.assert_close(loss, -ours(emissions, tags, mask, reduction="none").sum())


# ---- validation -------------------------------------------------------------------------------------

E, Y, M = torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)
FIRST_OFF, GAP = M.clone(), M.clone()
FIRST_OFF[1, 0] = False
GAP[0, 1] = False
BAD_TAG = Y.clone()
BAD_TAG[0, 2] = 4


@pytest.mark.parametrize(
    "args, message",
    [
        ((E[0], Y, M), r"emissions must have 3 dimensions \(batch, seq_len, num_tags\), got 2"),
        ((torch.randn(2, 3, 5), Y, M), r"emissions must have shape \(batch, seq_len, num_tags=4\), got \(2, 3, 5\)"),
        ((E.long(), Y, M), r"emissions must be a floating-point tensor, got torch.int64"),
        ((E[:, :0], Y[:, :0], M[:, :0]), r"emissions must have seq_len >= 1, got 0"),
        ((E, Y[:, :2], M), r"tags must have shape \(batch, seq_len\)=\(2, 3\) like emissions, got \(2, 2\)"),
        ((E, Y[0], M), r"tags must have shape .* got \(3,\)"),
        ((E, Y.float(), M), r"tags must be an integer tensor, got torch.float32"),
        ((E, Y, M.t()), r"mask must have shape \(batch, seq_len\)=\(2, 3\) like emissions, got \(3, 2\)"),
        ((E, Y, M.float()), r"mask must be a bool \(or integer 0/1\) tensor, got torch.float32"),
        ((E, Y, FIRST_OFF), r"mask\[:, 0\] must be all true .*got false for batch item\(s\) \[1\]"),
        ((E, Y, GAP), r"mask must be true on a prefix of each sequence .* batch item\(s\) \[0\]"),
        ((E, BAD_TAG, M), r"tags must be in \[0, num_tags=4\) where mask is true, got \[4\]"),
        ((E, Y, M, "average"), r"reduction must be one of \('none', 'sum', 'mean', 'token_mean'\), got 'average'"),
    ],
)
@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_bad_inputs_raise_value_error(cls: type, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(4)(*args)


@pytest.mark.parametrize("cls", [ConditionalRandomField, MaximumEntropyMarkovModel])
def test_bad_inputs_raise_value_error_in_decode_and_time_major(cls: type) -> None:
    with pytest.raises(ValueError, match=r"mask\[:, 0\] must be all true"):
        cls(4).decode(E, FIRST_OFF)
    with pytest.raises(ValueError, match=r"emissions must have shape \(batch, seq_len, num_tags=4\)"):
        cls(4).decode(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match=r"constraints are for 4 tags, the model has num_tags=5"):
        cls(5).decode(torch.randn(2, 3, 5), constraints=bmes_constraints("BMES"))
    with pytest.raises(ValueError, match=r"emissions must have shape \(seq_len, batch, num_tags=4\), got \(3, 2, 5\)"):
        cls(4, batch_first=False)(torch.randn(3, 2, 5), Y.t())
    with pytest.raises(ValueError, match=r"mask\[0\] must be all true .*batch item\(s\) \[1\]"):
        cls(4, batch_first=False)(E.transpose(0, 1), Y.t(), FIRST_OFF.t())
    cls(4)(E, Y, M.to(torch.uint8))  # an integer 0/1 mask is fine


# ---- constraints and parameter groups ---------------------------------------------------------------

def test_bmes_constraints() -> None:
    c = bmes_constraints(["B", "M", "E", "S"])
    B, M, E, S = range(4)
    forbidden = {(B, B), (B, S), (M, B), (M, S), (E, M), (E, E), (S, M), (S, E)}
    assert {(i, j) for i in range(4) for j in range(4) if not c.allowed[i, j]} == forbidden
    assert c.start.tolist() == [True, False, False, True] and c.end.tolist() == [False, False, True, True]
    tags = ["O", "B-P", "M-P", "E-P", "S-P", "B-L", "M-L", "E-L", "S-L"]
    c = bmes_constraints(tags)
    allowed = {(tags[i], tags[j]) for i in range(9) for j in range(9) if c.allowed[i, j]}
    assert ("B-P", "E-P") in allowed and ("B-P", "E-L") not in allowed and ("M-L", "M-L") in allowed
    assert ("E-P", "B-L") in allowed and ("O", "S-L") in allowed and ("O", "M-P") not in allowed
    assert c.start.tolist() == [p[0] in "BSO" for p in tags] and c.end.tolist() == [p[0] in "ESO" for p in tags]
    with pytest.raises(ValueError, match="tag 'X' does not start with one of B/M/E/S/O"):
        bmes_constraints(["B", "X"])


def test_bio_constraints() -> None:
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    c = bio_constraints(tags)
    into = {tags[i] for i in range(5) if c.allowed[i, 2]}
    assert into == {"B-A", "I-A"}
    assert c.allowed[:, [0, 1, 3]].all() and c.end.all()
    assert c.start.tolist() == [True, True, False, True, False]
    with pytest.raises(ValueError, match="tag 'M-A' does not start with one of B/I/O"):
        bio_constraints(["O", "M-A"])


def test_param_groups_give_the_transitions_a_larger_learning_rate() -> None:
    torch.manual_seed(0)
    encoder, crf = torch.nn.Linear(3, 4), ConditionalRandomField(4, transition_lr_multiplier=100.0)
    groups = crf.param_groups()
    assert [g["lr_multiplier"] for g in groups] == [100.0]
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in crf.parameters()}
    assert len(ConditionalRandomField(4, start_end_scores=False).param_groups()[0]["params"]) == 1
    scaled = [{"params": g["params"], "lr": 1e-3 * g["lr_multiplier"]} for g in groups]  # what an optimizer gets
    optimizer = torch.optim.Adam([{"params": encoder.parameters()}, *scaled], lr=1e-3)
    before = [p.detach().clone() for p in (encoder.weight, crf.transitions)]
    (-crf(encoder(torch.randn(2, 5, 3)), torch.randint(4, (2, 5)))).backward()
    optimizer.step()
    # Adam's first step moves every parameter with a gradient by about its learning rate.
    steps = [(p.detach() - b).abs().max().item() for p, b in zip((encoder.weight, crf.transitions), before)]
    assert steps == pytest.approx([1e-3, 0.1], rel=1e-3)
