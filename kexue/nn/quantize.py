"""Vector quantisation: the bottleneck of VQ-VAE -- every encoder vector is replaced by its nearest code of a learnt
codebook, gradients pass straight through, and the codebook follows the encoder by a loss or by moving averages.

Post: VQ-VAE的简明介绍：量子化自编码器 (https://kexue.fm/archives/6760); paper: van den Oord, Vinyals & Kavukcuoglu,
Neural Discrete Representation Learning (NeurIPS 2017), its appendix for the EMA codebook. With ``z`` the encoder's
output and ``e`` its nearest code, the decoder reads ``z + sg[e - z]`` (value ``e``, gradient of ``z``) and the loss
adds ``||sg[z] - e||^2`` (moves the codes) and ``beta * ||z - sg[e]||^2`` (commits the encoder), ``beta = 0.25``.

Functional forms (:func:`nearest_codes`, :func:`vq_losses`, :func:`ema_codebook_update`, :func:`code_perplexity`)
hold the math; :class:`VectorQuantizer` and the :class:`CodeUsage` metric are thin modules over them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from kexue.distributed import from_first_process, sum_across_processes


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    """Index ``(N,)`` of the code nearest (squared Euclidean distance) to each row of ``z`` ``(N, D)`` among the
    rows of ``codebook`` ``(K, D)``; ties go to the lowest index."""
    d = (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)[None])  # (N, K)
    return d.argmin(1)  # (N,)


def vq_losses(z: Tensor, quantized: Tensor) -> tuple[Tensor, Tensor]:
    """``(codebook_loss, commitment_loss)`` = ``(mean (sg[z] - e)^2, mean (z - sg[e])^2)`` of encoder outputs ``z``
    and their codes ``quantized`` (same shape, any; the means run over every element). The first moves only the
    codes, the second only the encoder (kexue.fm/archives/6760)."""
    return F.mse_loss(quantized, z.detach()), F.mse_loss(z, quantized.detach())


def straight_through(z: Tensor, quantized: Tensor) -> Tensor:
    """``z + sg[quantized - z]``: the value of ``quantized``, the gradient of ``z`` (identity to the encoder)."""
    return z + (quantized - z).detach()


def ema_codebook_update(z: Tensor, codes: Tensor, cluster_size: Tensor, embed_sum: Tensor, decay: float,
                        eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """One EMA step of the codebook (the paper's appendix A.1) from vectors ``z`` ``(N, D)`` assigned to ``codes``
    ``(N,)``; returns the new ``(cluster_size (K,), embed_sum (K, D), codebook (K, D))``.

    ``N_k <- decay N_k + (1 - decay) n_k``, ``m_k <- decay m_k + (1 - decay) sum_{codes = k} z``, ``e_k = m_k / N~_k``
    with the Laplace-smoothed count ``N~_k = (N_k + eps) / (sum N + K eps) * sum N`` (no division by zero for a code
    that went unused). Under DDP ``n_k`` and the sums run over every process's vectors, so every process takes the
    step one process would take on all of them."""
    K = cluster_size.shape[0]
    onehot = F.one_hot(codes, K).to(z.dtype)  # (N, K)
    counts, sums = sum_across_processes(onehot.sum(0)), sum_across_processes(onehot.T @ z)  # (K,), (K, D)
    cluster_size = decay * cluster_size + (1 - decay) * counts  # (K,)
    embed_sum = decay * embed_sum + (1 - decay) * sums  # (K, D)
    n = cluster_size.sum()
    smoothed = (cluster_size + eps) / (n + K * eps) * n  # (K,)
    return cluster_size, embed_sum, embed_sum / smoothed[:, None]


def code_perplexity(counts: Tensor) -> tuple[Tensor, Tensor]:
    """``(perplexity, used_share)`` of code-usage ``counts`` ``(K,)``: ``exp`` of the entropy of the usage
    distribution (``K`` when every code is used equally, 1 when one code takes everything) and the share of the
    ``K`` codes used at least once."""
    p = counts.float() / counts.sum().clamp(min=1)  # (K,)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return entropy.exp(), (counts > 0).float().mean()


class VQOutput(NamedTuple):
    """What :class:`VectorQuantizer` returns: ``quantized`` ``(B, D, H, W)`` (straight-through), ``codes``
    ``(B, H, W)``, the two loss terms of :func:`vq_losses` and ``loss = codebook_loss + beta * commitment_loss``
    (the codebook term left out when the codebook follows EMA updates)."""

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


class VectorQuantizer(nn.Module):
    """VQ-VAE's quantiser: ``z (B, D, H, W)`` -> nearest of ``num_codes`` codes at every position.

    Args:
        num_codes: codebook size ``K`` (>= 2).
        code_dim: ``D``, the encoder's channels.
        beta: weight of the commitment loss (0.25 in the paper and the post).
        ema: the codebook follows exponential moving averages of its vectors (:func:`ema_codebook_update`) instead
            of the codebook loss.
        decay, eps: of the EMA update.
        restart_after: a code unused for this many training batches is moved onto a random encoder output of the
            current batch (dead-code restart); 0 never restarts.
        data_init: the first training batch sets the codebook to random encoder outputs.

    In training mode a forward also updates the EMA codebook and restarts dead codes; :meth:`quantize` never does.
    Under DDP these updates are the same on every process: code counts and EMA sums are summed over the processes,
    and the encoder outputs a data initialisation or a restart picks are the first process's (DDP syncs only
    gradients, and broadcasts buffers from the first process, which would drop the other processes' statistics).
    Computed in float32 whatever the autocast (distances in bfloat16 pick the wrong codes).
    """

    def __init__(self, num_codes: int = 64, code_dim: int = 16, beta: float = 0.25, ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, restart_after: int = 100, data_init: bool = True) -> None:
        super().__init__()
        if num_codes < 2:
            raise ValueError(f"num_codes must be >= 2, got {num_codes}")
        if code_dim < 1:
            raise ValueError(f"code_dim must be >= 1, got {code_dim}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if restart_after < 0:
            raise ValueError(f"restart_after must be >= 0, got {restart_after}")
        self.num_codes, self.code_dim, self.beta, self.ema = num_codes, code_dim, beta, ema
        self.decay, self.eps, self.restart_after, self.data_init = decay, eps, restart_after, data_init
        codebook = torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)  # (K, D)
        if ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("unused", torch.zeros(num_codes, dtype=torch.long))  # batches since last use
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # dead codes restarted so far
        self.register_buffer("initialized", torch.tensor(not data_init))

    def _flat(self, z: Tensor) -> Tensor:
        if z.dim() != 4 or z.shape[1] != self.code_dim:
            raise ValueError(f"z must be (B, {self.code_dim}, H, W), got {tuple(z.shape)}")
        return z.float().permute(0, 2, 3, 1).reshape(-1, self.code_dim)  # (B*H*W, D)

    def lookup(self, codes: Tensor) -> Tensor:
        """Code vectors ``(B, D, H, W)`` of code indices ``codes`` ``(B, H, W)``."""
        return self.codebook[codes].permute(0, 3, 1, 2)  # (B, D, H, W)

    @torch.no_grad()
    def quantize(self, z: Tensor) -> Tensor:
        """Nearest-code indices ``(B, H, W)`` of ``z`` ``(B, D, H, W)``; no update, no gradient."""
        B, _, H, W = z.shape
        return nearest_codes(self._flat(z), self.codebook.float()).view(B, H, W)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        """Training-time state changes: data init, EMA step, dead-code restart (in that order)."""
        if not bool(self.initialized):
            self._reset(torch.ones(self.num_codes, dtype=torch.bool, device=flat.device), flat)
            self.initialized.fill_(True)
        if self.ema:
            self.cluster_size, self.embed_sum, codebook = ema_codebook_update(
                flat, codes, self.cluster_size, self.embed_sum, self.decay, self.eps)
            self.codebook.copy_(codebook)
        counts = sum_across_processes(torch.bincount(codes, minlength=self.num_codes))  # (K,), all processes
        self.unused.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused >= self.restart_after if self.restart_after else torch.zeros_like(counts, dtype=torch.bool)
        if bool(dead.any()):
            self._reset(dead, flat)
            self.restarts.add_(int(dead.sum()))

    def _reset(self, which: Tensor, flat: Tensor) -> None:
        """Move the codes ``which`` ``(K,)`` onto random rows of ``flat`` ``(N, D)``."""
        picks = flat[torch.randint(len(flat), (int(which.sum()),), device=flat.device)]  # (k, D)
        picks = from_first_process(picks.contiguous())  # `which` is the same everywhere, so is k
        self.codebook.data[which] = picks.to(self.codebook.dtype)
        if self.ema:
            self.embed_sum[which] = picks
            self.cluster_size[which] = 1.0
        self.unused[which] = 0

    def forward(self, z: Tensor) -> VQOutput:
        """Quantise ``z`` ``(B, D, H, W)``: see :class:`VQOutput`. Training mode updates the codebook state first
        (EMA, restarts) from this batch's assignments, then quantises with the updated codebook."""
        B, _, H, W = z.shape
        with torch.autocast(z.device.type, enabled=False):
            flat = self._flat(z)  # (N, D)
            if self.training:
                self._update(flat.detach(), nearest_codes(flat.detach(), self.codebook.detach().float()))
            codes = nearest_codes(flat.detach(), self.codebook.detach().float())  # (N,)
            q = self.codebook.float()[codes].view(B, H, W, self.code_dim).permute(0, 3, 1, 2)  # (B, D, H, W)
            z32 = z.float()
            codebook_loss, commitment_loss = vq_losses(z32, q)
            loss = self.beta * commitment_loss + (0.0 if self.ema else codebook_loss)
            quantized = straight_through(z32, q).to(z.dtype)
        return VQOutput(quantized, codes.view(B, H, W), loss, codebook_loss, commitment_loss)


class CodeUsage(Metric):
    """Code-usage counts over an epoch (summed across devices, so ``compute()`` is the same on every process: logging
    it with ``sync_dist`` only quiets Lightning); ``compute()`` gives ``{"perplexity", "codes_used"}`` by
    :func:`code_perplexity`. ``update(codes)`` takes code indices of any shape."""

    full_state_update = False

    def __init__(self, num_codes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", torch.zeros(num_codes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, codes: Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1), minlength=self.num_codes)

    def compute(self) -> dict[str, Tensor]:
        perplexity, used = code_perplexity(self.counts)
        return {"perplexity": perplexity, "codes_used": used}


__all__ = ["CodeUsage", "VQOutput", "VectorQuantizer", "code_perplexity", "ema_codebook_update", "nearest_codes",
           "straight_through", "vq_losses"]
