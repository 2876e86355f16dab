"""W&B as the default dashboard, usable with no account: offline unless credentials exist."""

from __future__ import annotations

import netrc
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only


def wandb_credentials_found() -> bool:
    """True when W&B could log in without asking: ``WANDB_API_KEY`` or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def fresh_run_dir(root: str | os.PathLike) -> str:
    """A new directory ``<root>/<YYYYmmdd-HHMMSS>[-N]`` (created on rank 0), never an existing one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path(root) / stamp, 1
    while path.exists():  # never write into an earlier run's directory
        path, n = Path(root) / f"{stamp}-{n}", n + 1
    if rank_zero_only.rank == 0:  # other DDP ranks get rank 0's directory through trainer.log_dir
        path.mkdir(parents=True)
    return str(path)


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with kexue's defaults.

    - ``mode=None`` picks ``$WANDB_MODE`` if set, else ``"online"`` when credentials are found and
      ``"offline"`` otherwise, so a run never stops to ask for a login.
    - Each run gets its own directory ``<save_dir>/<YYYYmmdd-HHMMSS>``; the resolved config,
      figures and checkpoints of the run land there, and no earlier run is overwritten.

    Args:
        save_dir: root under which each run makes its own directory.
        project: W&B project.
        name: run name (W&B picks one when None).
        group: W&B group (kexue's CLI fills in the task name when None).
        tags: W&B tags.
        job_type: W&B job type (the CLI sets ``fit``, ``test``...).
        mode: ``"online"``, ``"offline"``, ``"disabled"`` or None (automatic, see above).
        log_model: upload checkpoints as W&B artifacts (not possible offline).
        kwargs: passed on to ``wandb.init``.
    """

    def __init__(
        self,
        save_dir: str = "runs",
        project: str = "kexue",
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        job_type: str | None = None,
        mode: str | None = None,
        log_model: bool = False,
        **kwargs: Any,
    ) -> None:
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if wandb_credentials_found() else "offline")
        super().__init__(
            name=name,
            save_dir=fresh_run_dir(save_dir),
            project=project,
            log_model=log_model and self.mode == "online",
            group=group,
            tags=tags,
            job_type=job_type,
            mode=self.mode,
            **kwargs,
        )

    def finish(self) -> None:
        """Close the W&B run (flushes config and summary); Lightning leaves it open at exit."""
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._experiment.finish()

    def offline_hint(self) -> str | None:
        """Where an offline run was written and the command that uploads it, or None."""
        if self.mode not in ("offline", "dryrun") or self._experiment is None:
            return None
        run_dir = Path(self._experiment.dir).parent
        return f"W&B offline run saved in {run_dir}; upload it with: wandb sync {run_dir}"
