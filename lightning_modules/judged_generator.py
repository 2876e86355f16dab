"""What the GAN and its VAE baseline share: fixed latent codes, sample grids, and scores under the digit judge.

Post: 用变分推断统一理解生成模型(VAE、GAN、AAE、ALI) (https://kexue.fm/archives/5716). The scores are
:class:`kexue.metrics.InceptionScore` and :class:`kexue.metrics.FrechetDistance` on the judge's probabilities and
features (:func:`kexue.models.judge_classifier`). The reference (real) features come through the data path: each
validation / test batch the DataModule gives is added in ``validation_step`` / ``test_step``; the generated ones are
added at the epoch's end, each process its share of the fixed codes, so the metrics' sum states sync to the
one-process scores under DDP, given each real image reaches one process (``data.unrepeated_eval``, set in
conf/gan.yaml; Lightning's default sampler repeats up to ``W - 1`` images to even out ``W`` shards).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from kexue.errors import UsageError
from kexue.metrics.images import FrechetDistance, InceptionScore
from kexue.metrics.missing import not_computed
from kexue.models.judge import JudgeConfig, judge_classifier
from kexue.platform.figures import image_grid_figure, log_figure

STAGES = ("val", "test")


class JudgedGenerator(L.LightningModule):
    """Base of :class:`~kexue.lightning_modules.gan.GAN` and :class:`~kexue.lightning_modules.vae.VAE`; subclasses
    define :meth:`sample` and call :meth:`setup_scoring` in ``__init__``.

    Logs ``{val,test}/is`` and ``{val,test}/fid`` of ``num_samples`` samples from fixed codes against the stage's
    real images, and a grid of 64 samples each validation (``samples/epoch``). ``judge``: ``auto`` (MNIST-5k's judge
    for images of side >= 16, the 8 × 8 digits' otherwise), ``mnist5k``, ``digits``, or ``none`` (grids only).
    """

    def setup_scoring(self, latent_dim: object, num_samples: int, judge: str) -> None:
        """The fixed codes ``(num_samples, latent_dim)`` and the per-stage metrics; ``latent_dim`` is the
        generating network's attribute (a UsageError names a network without one)."""
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise UsageError(f"the model's generating network needs an int latent_dim attribute >= 1 (the size of "
                             f"z), got {latent_dim!r}")
        seed = torch.Generator().manual_seed(1234)  # the same codes for every run: grids are comparable
        self.register_buffer("fixed_z", torch.randn(num_samples, latent_dim, generator=seed), persistent=False)
        self._judge: list[nn.Module] = []  # a list, so the judge is no submodule: not trained, not in the checkpoint
        self.judge_name = judge
        # The Fréchet distance needs a covariance of the real images: the DataModule refuses a smaller split.
        self.min_evaluation_rows = 1 if judge == "none" else 2
        self.evaluation_metric = "the Fréchet distance (a covariance of the real images)"
        if judge != "none":
            self.inception = nn.ModuleDict({stage: InceptionScore(num_classes=10) for stage in STAGES})
            self.frechet = nn.ModuleDict({stage: FrechetDistance(JudgeConfig.features) for stage in STAGES})

    def sample(self, z: Tensor) -> Tensor:
        """Images ``(B, 1, H, W)`` in [0, 1] from latent codes ``z (B, latent_dim)``."""
        raise NotImplementedError

    def judge(self, side: int) -> nn.Module | None:
        """The frozen judge for images of ``side`` pixels (loaded or trained once, moved to this module's device),
        or None for ``judge: none``."""
        if self.judge_name == "none":
            return None
        if not self._judge:
            name = self.judge_name if self.judge_name != "auto" else ("mnist5k" if side >= 16 else "digits")
            self._judge.append(judge_classifier(name))
        return self._judge[0].to(self.device)

    def _add_real(self, stage: str, images: Tensor) -> None:
        judge = self.judge(images.shape[-1])
        if judge is not None:
            self.frechet[stage].update(judge.features_and_logits(images.float())[0], real=True)

    @torch.no_grad()
    def _score(self, stage: str) -> None:
        if stage == "val":
            grid = self.sample(self.fixed_z[:64]).float()  # (64, 1, H, W)
            log_figure(self.trainer, "samples/epoch", image_grid_figure(grid, title=f"epoch {self.current_epoch}"))
        if self.judge_name == "none":  # a monitor of val/fid (conf/gan.yaml) sees NaN, the CLI prints why
            for name in ("is", "fid"):
                not_computed(self, f"{stage}/{name}", "model.judge none: no judge scores the samples")
            return
        if self.frechet[stage].real_count == 0:  # no evaluation batch ran
            return
        share = self.fixed_z[self.global_rank::self.trainer.world_size]  # this process's codes
        if len(share):
            samples = torch.cat([self.sample(z).float() for z in share.split(250)])  # (n, 1, H, W)
            features, logits = (t.float() for t in self.judge(samples.shape[-1]).features_and_logits(samples))
            self.inception[stage].update(logits.softmax(-1))
            self.frechet[stage].update(features, real=False)
        for name, metric in (("is", self.inception[stage]), ("fid", self.frechet[stage])):
            value = metric.compute()  # synced over the processes: the same value on each, so sync_dist changes
            metric.reset()  # nothing and only spares Lightning's epoch-level warning
            self.log(f"{stage}/{name}", value.float(), prog_bar=stage == "val", sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._add_real("val", batch[0])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._add_real("test", batch[0])

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")
