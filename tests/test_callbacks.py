"""kexue.tricks on tiny models, plus the issue's integration run of composed presets through the CLI."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, TensorDataset

from kexue.errors import UsageError
from kexue.tricks import (
    CaptureIntermediates,
    OrthogonalInit,
    Recompute,
    SwapActivation,
    saved_tensor_bytes,
    wrap_recompute,
)

from .conftest import kexue


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x)))  # functional relu: what SwapActivation must catch


class Net(nn.Module):
    def __init__(self, d: int = 8, depth: int = 4) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"layers": nn.ModuleList(Block(d) for _ in range(depth)), "act": nn.ReLU()})
        self.loss_fn = ReluLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.encoder["layers"]:
            x = block(x)
        return self.encoder["act"](x)


class ReluLoss(nn.Module):
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - y).mean()


def _reference(net: Net, x: torch.Tensor, act) -> torch.Tensor:
    """The net's computation written out with ``act`` in place of relu."""
    for block in net.encoder["layers"]:
        x = x + block.b(act(block.a(x)))
    return act(x)


def _grads(net: nn.Module, out: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad()
    out.pow(2).sum().backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("keep_last", [0, 2])
def test_recompute_same_gradients_less_saved_memory(keep_last: int) -> None:
    torch.manual_seed(0)
    net, x = Net(d=16, depth=6), torch.randn(32, 16)
    plain = net(x)
    grads = _grads(net, plain)
    before = saved_tensor_bytes(lambda: net(x))
    Recompute("encoder.layers.*", keep_last).setup(None, net, "fit")
    Recompute("encoder.layers.*", keep_last).setup(None, net, "fit")  # idempotent
    assert wrap_recompute(net, "encoder.layers.*", keep_last) == [f"encoder.layers.{i}" for i in range(6 - keep_last)]
    after = saved_tensor_bytes(lambda: net(x))
    out = net(x)
    torch.testing.assert_close(out, plain)
    for g, h in zip(grads, _grads(net, out)):
        torch.testing.assert_close(g, h)
    if keep_last:  # the last blocks keep their activations: between no recompute and a full one
        twin = Net(d=16, depth=6)
        wrap_recompute(twin, "encoder.layers.*")
        assert saved_tensor_bytes(lambda: twin(x)) < after < before
    else:
        assert after * 3 < before, (before, after)
    net.eval()  # no checkpointing outside training
    assert saved_tensor_bytes(lambda: net(x)) == before


def test_recompute_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="leaves none of the 6"):
        wrap_recompute(Net(d=16, depth=6), "encoder.layers.*", keep_last=6)
    with pytest.raises(UsageError, match="keep_last must be >= 0"):
        Recompute("encoder.layers.*", keep_last=-1)
    with pytest.raises(UsageError, match="unknown \\['attn'\\]"):
        Recompute("encoder.layers.*", save=["attn"])
    with pytest.raises(UsageError, match="unknown \\['attn'\\]"):
        wrap_recompute(Net(), "encoder.layers.*", save=["attn"])


class _CountOps(TorchDispatchMode):
    """Counts the matrix products with a narrower output than their inner dimension, and fused attention calls."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.attention = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func in (torch.ops.aten.addmm.default, torch.ops.aten.mm.default):
            a, b = args[-2:] if func is torch.ops.aten.addmm.default else args
            self.down += b.shape[-1] < a.shape[-1]
        self.attention += "scaled_dot_product" in str(func) and "backward" not in str(func)
        return func(*args, **(kwargs or {}))


def test_recompute_save_keeps_attention_and_down_projections() -> None:
    """Selective recompute: same gradients as no checkpointing, and the backward pass re-runs neither the
    attention kernel nor the narrowing matmul (the feed-forward's second layer) that plain recompute re-runs."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 64, dropout=0.0, batch_first=True)
    x = torch.randn(3, 5, 16)
    backward_ops, grads = {}, {}
    for save in (None, (), ("attention", "down_proj")):
        net = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).train()
        if save is not None:
            wrap_recompute(net, "layers.*", save=save)
        loss = net(x).pow(2).sum()
        with _CountOps() as ops:
            loss.backward()
        backward_ops[save] = (ops.down, ops.attention)
        grads[save] = [p.grad for p in net.parameters()]
    for g, h in zip(grads[None], grads[("attention", "down_proj")]):
        torch.testing.assert_close(g, h)
    (down, attention), (base_down, base_attention) = backward_ops[()], backward_ops[None]
    assert (down - base_down, attention - base_attention) == (2, 2)  # plain recompute re-runs one of each per layer
    assert backward_ops[("attention", "down_proj")] == backward_ops[None]


def test_patterns_that_match_nothing_are_errors() -> None:
    with pytest.raises(UsageError, match="no submodule matches"):
        Recompute("decoder.*").setup(None, Net(), "fit")


@pytest.mark.parametrize("name, act", [("gelu", F.gelu), ("swish", F.silu)])
def test_swap_activation_functional_and_modules_not_losses(name: str, act) -> None:
    torch.manual_seed(1)
    net, x = Net(), torch.randn(5, 8)
    relu_out = net(x)
    SwapActivation(name).setup(None, net, "fit")
    out = net(x)
    assert not torch.allclose(out, relu_out)
    torch.testing.assert_close(out, _reference(net, x, act))
    y = torch.tensor([3.0, -1.0])
    assert net.loss_fn(y).item() == pytest.approx(F.relu(1 - y).mean().item())  # losses keep their relu


@pytest.mark.parametrize("recompute_first", [True, False])
def test_swap_activation_survives_recomputation(recompute_first: bool) -> None:
    """Recomputed blocks must re-run with the swapped activation, or their gradients would be silently wrong."""
    torch.manual_seed(2)
    net, x = Net(), torch.randn(5, 8)
    steps = [Recompute("encoder.layers.*"), SwapActivation("gelu")]
    for cb in steps if recompute_first else steps[::-1]:
        cb.setup(None, net, "fit")
    grads = _grads(net, net(x))
    reference = _grads(net, _reference(net, x, F.gelu))
    for g, h in zip(grads, reference):
        torch.testing.assert_close(g, h)


def test_orthogonal_init_rows_orthonormal_embeddings_untouched() -> None:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 4), nn.Conv1d(4, 3, 2), nn.LSTM(3, 5))
    emb = net[0].weight.detach().clone()
    cb = OrthogonalInit(gain=2.0)
    cb.setup(None, net, "fit")
    w = net[1].weight.detach()  # (4, 6): rows orthogonal with norm = gain
    torch.testing.assert_close(w @ w.T, 4.0 * torch.eye(4), atol=1e-5, rtol=0)
    c = net[2].weight.detach().flatten(1)  # (3, 4*2)
    torch.testing.assert_close(c @ c.T, 4.0 * torch.eye(3), atol=1e-5, rtol=0)
    h = net[3].weight_hh_l0.detach()  # (20, 5): columns orthogonal
    torch.testing.assert_close(h.T @ h, 4.0 * torch.eye(5), atol=1e-5, rtol=0)
    assert torch.equal(net[0].weight.detach(), emb)
    assert "3.weight_ih_l0" in cb.initialised and not any(n.startswith("0.") for n in cb.initialised)
    before = net[1].weight.detach().clone()
    cb.setup(None, net, "test")  # only when fitting
    assert torch.equal(net[1].weight.detach(), before)


class TinyAttention(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)  # (B, T, 8)
        h, _ = self.attn(h, h, h)  # weights averaged over heads: (B, T, T)
        return self.head(h).squeeze(-1).mean(-1)  # (B,)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return F.mse_loss(self(batch[0]), batch[1])

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", F.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_capture_intermediates_logs_attention_of_first_val_batch(tmp_path: Path) -> None:
    torch.manual_seed(4)
    x, y = torch.randn(12, 5, 2), torch.randn(12)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    capture = CaptureIntermediates("attn", output_index=1)
    model = TinyAttention()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        callbacks=[capture],
        default_root_dir=tmp_path,
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, loader, loader)
    weights = capture.captured["attn"]
    model.eval()
    with torch.no_grad():
        h = model.embed(x[:4])
        expected = model.attn(h, h, h)[1]  # (4, 5, 5)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5))
    assert list(Path(trainer.default_root_dir, "figures").glob("intermediate_attn.png"))  # figures: the run dir


def test_callback_presets_append_to_the_tasks_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    from kexue.platform.cli import main  # in-process: --print_config needs no fresh interpreter

    with pytest.raises(SystemExit) as stop:
        main(["fit", "sentiment", "--config", "ema", "--config", "recompute", "--print_config"])
    assert stop.value.code in (0, None)
    classes = re.findall(r"class_path: (\S+)", capsys.readouterr().out.split("\nmodel:")[0])
    callbacks = [c for c in classes if "callbacks" in c or c.startswith("kexue.tricks")]
    assert callbacks == [
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.callbacks.EarlyStopping",
        "lightning.pytorch.callbacks.EMAWeightAveraging",
        "kexue.tricks.Recompute",
    ], callbacks


def test_bad_module_pattern_is_one_line_error(capsys: pytest.CaptureFixture) -> None:
    from kexue.platform.cli import (
        main,  # in-process: the same one-line path as the command, without a fresh interpreter
    )

    args = ["--trainer.callbacks+=kexue.tricks.Recompute", "--trainer.callbacks.modules=decoder.*"]
    assert main(["fit", "sentiment", *args, "--trainer.fast_dev_run=1", "--logger", "none"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("kexue: error: no submodule matches") and "decoder.*" in last, last


def test_sentiment_with_every_trick_composed_from_the_cli(tmp_path: Path) -> None:
    """The issue's integration run: EMA + AdaFactor inside Lookahead + gradient accumulation, with recompute,
    orthogonal init, GELU and intermediate capture, all from presets and flags, no task code touched."""
    proc = kexue(
        "run",
        "sentiment",
        "--config",
        "ema",
        "--config",
        "lookahead",
        "--optimizer.optimizer",
        "kexue.optim.AdaFactor",
        "--trainer.accumulate_grad_batches",
        "2",
        "--config",
        "recompute",
        "--config",
        "orthogonal",
        "--config",
        "gelu",
        "--config",
        "intermediates",
        "--logger",
        "csv",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=40",  # 20 steps: the average and the raw weights differ measurably
        "--trainer.limit_val_batches=2",
        "--trainer.limit_test_batches=2",
        "--data.batch_size=8",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/acc" in proc.stdout
    (run_dir,) = (tmp_path / "runs" / "sentiment").iterdir()
    best = list(run_dir.glob("checkpoints/best-*.ckpt"))  # the task's ModelCheckpoint survived the presets
    assert len(best) == 1, list(run_dir.rglob("*"))
    ckpt = torch.load(best[0], map_location="cpu", weights_only=False)
    assert {"state_dict", "current_model_state"} <= ckpt.keys()  # EMA weights and raw weights
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)
    assert set(ckpt["optimizer_states"][0]) == {"wrapper", "inner"}
    assert (run_dir / "figures" / "intermediate_encoder.png").is_file()

    # validate/test/predict evaluate the averaged weights: `kexue validate` on the checkpoint gives the val/loss
    # the fit logged (EMAWeightAveraging swaps the average in for validation), and the raw weights give another.
    logged = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r.get("val/loss")]
    raw_ckpt = {**ckpt, "state_dict": raw}
    torch.save(raw_ckpt, tmp_path / "raw.ckpt")
    losses = []
    for path in (best[0], tmp_path / "raw.ckpt"):
        out = kexue("validate", "sentiment", "--ckpt_path", str(path), "--logger", "none",
                    "--trainer.limit_val_batches=2", "--data.batch_size=8")
        assert out.returncode == 0, out.stderr[-2000:]
        losses.append(float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("val/loss"))))
    assert losses[0] == pytest.approx(float(logged[-1]["val/loss"]), abs=1e-4)
    assert abs(losses[1] - losses[0]) > 1e-4


def test_another_task_takes_the_same_presets(tmp_path: Path) -> None:
    """Nothing above is sentiment-specific: the CRF tagger (CNN with F.relu, param groups) takes them too, and
    they take effect: LAMB wraps the optimizer, the CRF group keeps its multiplier, the callbacks are there.
    In-process (the callbacks act on this run's model only: nothing leaks into later tests)."""
    from kexue.platform.cli import main

    assert main([
        "fit",
        "cws",
        *("--config", "lamb", "--config", "swish", "--config", "recompute", "--config", "orthogonal"),
        *("--config", "ema", "--trainer.fast_dev_run=2", "--logger", "none"),
        *("--model.transition_lr_multiplier", "10", "--trainer.callbacks+=kexue.tests.helpers.RecordSetup"),
    ]) == 0
    optimizer, lrs, callbacks = (tmp_path / "setup.txt").read_text().splitlines()
    assert optimizer == "LayerAdaptation"
    base, crf = map(float, lrs.split(","))
    assert crf == pytest.approx(10 * base)
    for name in ("SwapActivation", "Recompute", "OrthogonalInit", "EMAWeightAveraging"):
        assert name in callbacks.split(), callbacks
