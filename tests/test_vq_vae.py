"""VQ-VAE (kexue.fm/archives/6760): the quantiser's math against brute force and hand computation, the prior's
causality, and the task through the CLI (both quantisers and the plain autoencoder)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue.errors import UsageError
from kexue.lightning_modules.vq_vae import VQVAE
from kexue.models.vq_vae import CodePrior, ConvAutoencoder, VQVAENetwork, grid_stages
from kexue.nn.quantize import (
    CodeUsage,
    VectorQuantizer,
    code_perplexity,
    ema_codebook_update,
    nearest_codes,
    vq_losses,
)
from kexue.nn.transformer import TransformerConfig
from kexue.platform.cli import main


def test_nearest_codes_is_the_brute_force_argmin() -> None:
    g = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(50, 3, generator=g), torch.randn(7, 3, generator=g)
    expected = [min(range(7), key=lambda k: sum((z[i, d] - codebook[k, d]).item() ** 2 for d in range(3)))
                for i in range(50)]
    assert nearest_codes(z, codebook).tolist() == expected


def test_quantizer_output_is_the_nearest_code_at_every_position() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=5, code_dim=3, data_init=False).eval()
    z = torch.randn(2, 3, 4, 5)  # (B, D, H, W)
    out = vq(z)
    assert out.codes.shape == (2, 4, 5) and out.quantized.shape == z.shape
    for b, i, j in [(0, 0, 0), (1, 3, 4), (0, 2, 1)]:
        d = ((vq.codebook - z[b, :, i, j]) ** 2).sum(1)  # (K,)
        assert out.codes[b, i, j] == d.argmin()
        torch.testing.assert_close(out.quantized[b, :, i, j], vq.codebook[d.argmin()].detach())


def test_straight_through_gradient_is_the_identity_to_the_encoder() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, code_dim=2, beta=0.0, data_init=False).eval()
    z = torch.randn(3, 2, 2, 2, requires_grad=True)
    w = torch.randn(3, 2, 2, 2)
    (grad,) = torch.autograd.grad((vq(z).quantized * w).sum(), z)
    torch.testing.assert_close(grad, w)
    assert vq.codebook.grad is None  # the decoder's gradient never reaches the codebook through the output


def test_loss_terms_equal_their_formulas_and_move_what_they_should() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=6, code_dim=3, beta=0.25, data_init=False).eval()
    z = torch.randn(2, 3, 3, 3, requires_grad=True)
    out = vq(z)
    e = vq.codebook.detach()[out.codes].permute(0, 3, 1, 2)  # (B, D, H, W)
    ref = ((z.detach() - e) ** 2).sum().item() / z.numel()
    assert out.codebook_loss.item() == pytest.approx(ref, rel=1e-6)
    assert out.commitment_loss.item() == pytest.approx(ref, rel=1e-6)
    assert out.loss.item() == pytest.approx(1.25 * ref, rel=1e-6)
    # codebook term: gradient to the codes only, 2 (e - z) / n summed per code; commitment: to z only, 2 (z - e) / n
    g_z, g_e = torch.autograd.grad(out.codebook_loss, [z, vq.codebook], allow_unused=True)
    assert g_z is None
    expected = torch.zeros(6, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                k = out.codes[b, i, j]
                expected[k] += 2 * (vq.codebook[k].detach() - z[b, :, i, j].detach()) / z.numel()
    torch.testing.assert_close(g_e, expected)
    g_z, g_e = torch.autograd.grad(out.commitment_loss, [z, vq.codebook], allow_unused=True)
    assert g_e is None
    torch.testing.assert_close(g_z, 2 * (z.detach() - e) / z.numel())
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(vq_losses(a, b)[0], torch.tensor(np.mean((a.numpy() - b.numpy()) ** 2)))


def test_ema_update_equals_a_hand_computed_reference() -> None:
    z = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])  # (N=3, D=2)
    codes = torch.tensor([0, 0, 2])
    cluster_size = torch.tensor([1.0, 2.0, 1.0])  # K = 3
    embed_sum = torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    decay, eps = 0.5, 0.1
    size, total, codebook = ema_codebook_update(z, codes, cluster_size, embed_sum, decay, eps)
    # N = 0.5 [1, 2, 1] + 0.5 [2, 0, 1] = [1.5, 1, 1]; m = 0.5 m + 0.5 [[4, 2], [0, 0], [0, 4]]
    assert size.tolist() == [1.5, 1.0, 1.0]
    assert total.tolist() == [[2.5, 1.5], [1.0, 1.0], [0.0, 2.0]]
    n = 3.5
    smoothed = [(s + eps) / (n + 3 * eps) * n for s in (1.5, 1.0, 1.0)]
    expected = [[2.5 / smoothed[0], 1.5 / smoothed[0]], [1 / smoothed[1], 1 / smoothed[1]], [0, 2 / smoothed[2]]]
    torch.testing.assert_close(codebook, torch.tensor(expected))


def test_ema_quantizer_moves_its_codebook_to_the_running_means() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=2, code_dim=1, ema=True, decay=0.0, eps=0.0, restart_after=0, data_init=False)
    vq.codebook.copy_(torch.tensor([[-1.0], [1.0]]))
    z = torch.tensor([-3.0, -1.0, 2.0, 4.0]).view(1, 1, 1, 4)
    vq(z)  # decay 0: the codes become the means of their assigned vectors
    assert vq.codebook.flatten().tolist() == [-2.0, 3.0]


def test_dead_codes_restart_on_encoder_outputs() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=3, code_dim=2, restart_after=2, data_init=False)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, -100.0]]))
    z = torch.randn(1, 2, 2, 2) * 0.1  # always nearest to code 0
    vq(z)
    assert vq.restarts.item() == 0 and vq.unused.tolist() == [0, 1, 1]
    vq(z)  # codes 1 and 2 unused for 2 batches: moved onto rows of z
    rows = z.permute(0, 2, 3, 1).reshape(-1, 2)
    assert vq.restarts.item() == 2
    for k in (1, 2):
        assert ((rows - vq.codebook[k].detach()).abs().sum(1) < 1e-6).any()
    vq.eval()
    vq(z * 1000)  # eval: no restarts, no update
    assert vq.restarts.item() == 2


def test_data_init_takes_the_codebook_from_the_first_batch() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, code_dim=2)
    z = torch.randn(2, 2, 3, 3) + 10
    vq(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 2)
    assert all(((rows - c).abs().sum(1) < 1e-6).any() for c in vq.codebook.detach())


def test_perplexity_is_exp_entropy_by_brute_force() -> None:
    counts = torch.tensor([5, 0, 3, 2, 0, 10])
    p = [c / 20 for c in counts.tolist() if c]
    perplexity, used = code_perplexity(counts)
    assert perplexity.item() == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)), rel=1e-6)
    assert used.item() == pytest.approx(4 / 6)
    assert code_perplexity(torch.tensor([7, 7, 7, 7]))[0].item() == pytest.approx(4.0, rel=1e-6)
    metric = CodeUsage(6)
    metric.update(torch.tensor([[0, 0, 2], [5, 5, 5]]))
    metric.update(torch.tensor([5, 3]))
    from scipy.stats import entropy

    out = metric.compute()
    assert out["perplexity"].item() == pytest.approx(math.exp(entropy([2, 0, 1, 1, 0, 4])), rel=1e-6)
    assert out["codes_used"].item() == pytest.approx(4 / 6)


def test_bad_quantizer_arguments() -> None:
    with pytest.raises(ValueError, match="num_codes must be >= 2"):
        VectorQuantizer(num_codes=1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        VectorQuantizer(beta=-0.1)
    with pytest.raises(ValueError, match=r"z must be \(B, 16, H, W\)"):
        VectorQuantizer(code_dim=16)(torch.zeros(2, 3, 4, 4))


def test_grid_and_autoencoder_shapes() -> None:
    assert grid_stages(28, 28) == 2 and grid_stages(8, 8) == 1 and grid_stages(7, 9) == 0
    net = VQVAENetwork(ConvAutoencoder([1, 28, 28], hidden=8, code_dim=4), VectorQuantizer(8, 4))
    x = torch.rand(3, 1, 28, 28)
    x_hat, vq = net(x)
    assert net.grid == (7, 7) and x_hat.shape == x.shape and vq.codes.shape == (3, 7, 7)
    assert net.decode_codes(net.encode_codes(x)).shape == x.shape
    plain, out = VQVAENetwork(ConvAutoencoder([1, 8, 8], hidden=8, code_dim=4))(torch.rand(2, 1, 8, 8))
    assert plain.shape == (2, 1, 8, 8) and out is None


def test_network_decodes_what_it_encodes_through_the_codebook() -> None:
    # decode_codes(encode_codes(x)) must be the quantised forward pass: the decoder of the nearest codes.
    torch.manual_seed(0)
    net = VQVAENetwork(ConvAutoencoder([1, 8, 8], hidden=8, code_dim=4), VectorQuantizer(8, 4, data_init=False)).eval()
    x = torch.rand(3, 1, 8, 8)
    x_hat, vq = net(x)
    torch.testing.assert_close(net.encode_codes(x), vq.codes)
    torch.testing.assert_close(net.decode_codes(vq.codes), x_hat.clamp(0, 1))


def test_prior_sizes_are_checked_against_the_quantizer_and_the_grid() -> None:
    small = TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="learned", max_length=16)
    autoencoder = ConvAutoencoder([1, 8, 8], hidden=8, code_dim=4, stages=1)  # a 4 x 4 grid: 16 codes
    VQVAENetwork(autoencoder, VectorQuantizer(8, 4), CodePrior(8, small))  # fits
    with pytest.raises(UsageError, match="tokenizer has 9 ids but the network's embedding has 8 rows"):
        VQVAENetwork(autoencoder, VectorQuantizer(9, 4), CodePrior(8, small))  # a code the prior cannot read
    with pytest.raises(UsageError, match=r"code grid \(8x8 codes.*=64 exceeds the 16 positions"):
        VQVAENetwork(ConvAutoencoder([1, 8, 8], hidden=8, code_dim=4, stages=0), VectorQuantizer(8, 4),
                     CodePrior(8, small))
    assert VQVAENetwork(autoencoder, None, CodePrior(8, small)).prior is None  # no codes, no prior


def test_module_takes_its_networks_as_components() -> None:
    # Python use mirrors the CLI's: the networks are arguments, the module only composes and trains them.
    model = VQVAE(autoencoder=ConvAutoencoder([1, 8, 8], hidden=8, code_dim=4), quantizer=VectorQuantizer(8, 4),
                  prior=CodePrior(8, TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="learned",
                                                       max_length=16)))
    assert model.net.grid == (4, 4) and model.net.prior.num_codes == 8
    assert model.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)
    default = VQVAE(autoencoder=ConvAutoencoder([1, 8, 8]))  # the lazy_instance defaults: 64 codes of 16 dims
    assert default.net.quantizer.num_codes == default.net.prior.num_codes == 64
    with pytest.raises(ValueError, match="data_shape must be \\[C, H, W\\] images"):
        VQVAE()  # the image shape only the data knows (linked from data.data_shape by the task)


def test_prior_is_causal_and_samples_codes() -> None:
    torch.manual_seed(0)
    prior = CodePrior(5, TransformerConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0)).eval()
    codes = torch.randint(0, 5, (2, 9))
    changed = codes.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 5
    a, b = prior(codes), prior(changed)  # (B, T, K)
    assert a.shape == (2, 9, 5)
    torch.testing.assert_close(a[:, :5], b[:, :5])  # logits of code t see codes < t only (code 4 is input to 5)
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    samples = prior.sample(4, 9, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 9) and int(samples.min()) >= 0 and int(samples.max()) < 5
    # the cached sampler's distribution equals the full forward's: greedy at a tiny temperature agrees
    greedy = prior.sample(2, 9, temperature=1e-6)
    full = prior(greedy).argmax(-1)
    assert torch.equal(full, greedy)


TINY = ["--model.autoencoder.hidden", "8", "--model.autoencoder.code_dim", "4", "--model.quantizer.num_codes", "8",
        "--model.prior.config.dim", "16", "--model.prior.config.num_heads", "2", "--model.prior.config.num_layers", "1",
        "--model.num_samples", "4"]
QUANTIZERS = {"ema": ["--model.quantizer.ema", "true"], "none": ["--model.quantizer", "null"]}


@pytest.mark.parametrize("quantizer", ["ema", "none"])
def test_cli_fast_dev_run(quantizer: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "vq_vae", "--trainer.fast_dev_run=1", "--logger", "none", *TINY, *QUANTIZERS[quantizer]]) == 0
    lines = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("test/"))
    assert "test/mse" in lines
    assert ("test/perplexity" in lines) == (quantizer != "none")


def test_cli_two_stages_train_the_prior(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    """Two epochs on a few batches: the autoencoder first, then the prior (its NLL below uniform's log K)."""
    assert main(["run", "vq_vae", "--logger", "csv", "--trainer.max_epochs=3", "--model.prior_epochs=1",
                 "--trainer.limit_train_batches=8", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
                 "--trainer.enable_progress_bar=false", "--model.prior_lr=0.01", *TINY]) == 0
    out = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("test/"))
    assert float(out["test/prior_nll"]) < math.log(8) and float(out["test/mse"]) < 0.2
    assert list(tmp_path.rglob("samples_prior.png")) and list(tmp_path.rglob("reconstructions_test.png"))
    # The links: --model.quantizer.num_codes 8 sized the prior (8 codes + the start token), code_dim 4 the codebook.
    checkpoint = torch.load(next(tmp_path.rglob("last*.ckpt")), map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["prior"]["init_args"]["num_codes"] == 8
    assert checkpoint["state_dict"]["net.prior.lm.embed.weight"].shape == (9, 16)
    assert checkpoint["state_dict"]["net.quantizer.codebook"].shape == (8, 4)


def test_cli_stopped_before_the_prior_stage_prints_why_instead_of_its_nll(tmp_path, capsys) -> None:  # noqa: ANN001
    """Issue 29: trainer.max_steps ends the run in the autoencoder's epochs: no prior NLL (nor samples) of an
    untrained prior, one line saying why; the checkpoint remembers it for a later ``kexue test``."""
    assert main(["run", "vq_vae", "--logger", "csv", "--trainer.max_epochs=3", "--model.prior_epochs=1",
                 "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
                 "--trainer.enable_progress_bar=false", *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    (nll,) = [line for line in lines if line.startswith("test/prior_nll")]
    assert nll.startswith("test/prior_nll not computed: the prior never trained: training stopped after 2 "
                          "step(s), before the prior's stage (the last model.prior_epochs=1 of trainer.max_epochs=3")
    assert any(line.startswith("test/mse ") for line in lines) and not list(tmp_path.rglob("samples_prior.png"))
    checkpoint = torch.load(next(tmp_path.rglob("last*.ckpt")), map_location="cpu", weights_only=True)
    assert checkpoint["prior_steps"] == 0


def test_cli_plain_autoencoder_stops_where_the_vq_vae_autoencoder_stage_ends(tmp_path) -> None:  # noqa: ANN001
    import csv

    # null after TINY: a later --model.quantizer.num_codes would bring the default quantiser back
    assert main(["fit", "vq_vae", "--logger", "csv", "--trainer.max_epochs=5", "--model.prior_epochs=3",
                 "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
                 "--trainer.enable_progress_bar=false", *TINY, *QUANTIZERS["none"]]) == 0
    (path,) = tmp_path.rglob("metrics.csv")
    epochs = {int(row["epoch"]) for row in csv.DictReader(path.open()) if row.get("val/mse")}
    assert epochs == {0, 1}
