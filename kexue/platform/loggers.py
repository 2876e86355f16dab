"""W&B as the default dashboard, usable with no account: offline unless credentials exist."""

from __future__ import annotations

import netrc
import os
import shutil
import socket
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
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


class RunDirectory:
    """The run's own directory: made by :meth:`make`, taken back by :meth:`discard` when the command was refused.

    A refused command (exit 2 before the first batch: a bad option, a missing file, a checkpoint that does not fit)
    must leave ``runs/`` as it found it, yet the directory has to exist before the loggers and the config callback
    write into it. So :meth:`make` remembers the highest folder it created (``runs/`` itself on a first run) and
    :meth:`discard` removes the run directory, unless it holds a checkpoint, and then the folders above it that
    :meth:`make` created and that are empty again (another run's folder beside it keeps them). Nothing that existed
    before the command is touched: the run directory is always new (:func:`fresh_run_dir`).
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self._top: Path | None = None  # the highest folder make() created

    def make(self, root: str | os.PathLike) -> str:
        """A fresh run directory under ``root`` (see :func:`fresh_run_dir`); its path."""
        root = Path(root)
        missing = [folder for folder in (root, *root.parents) if not folder.exists()]  # mkdir(parents=True) makes them
        self.path = fresh_run_dir(root)
        self._top = missing[-1] if missing else Path(self.path)
        return self.path

    def discard(self) -> bool:
        """Remove what :meth:`make` created, as the class says; True if the run directory is gone."""
        if self.path is None or self._top is None or rank_zero_only.rank != 0:
            return False
        path = Path(self.path)
        if any(p.suffix == ".ckpt" for p in path.rglob("*")):
            return False
        shutil.rmtree(path, ignore_errors=True)
        for folder in path.parents:
            if folder != self._top and self._top not in folder.parents:
                break  # above what make() created
            try:
                folder.rmdir()
            except OSError:  # not empty: another run lives there
                break
        return not path.exists()


def withdraw_run(trainer: Any, run: RunDirectory) -> None:
    """Take back what a refused command made: its ``trainer``'s loggers' runs (a W&B offline run folder) and its
    run directory (:meth:`RunDirectory.discard`). Quietly: the refusal's one line stays the last thing on stderr."""
    for logger in trainer.loggers if trainer is not None else []:
        experiment = getattr(logger, "_experiment", None)  # only a run that was started; never start one here
        if experiment is not None and hasattr(experiment, "finish"):
            with open(os.devnull, "w") as devnull, redirect_stdout(devnull), redirect_stderr(devnull):
                try:
                    experiment.finish(exit_code=2)
                except Exception:  # noqa: BLE001 (a logger that cannot close must not hide the refusal)
                    pass
    try:
        run.discard()
    except OSError:
        pass


def check_reachable(url: str, timeout: float) -> None:
    """``OSError`` unless a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    W&B's own client retries a refused or black-holed server for about 90 s whatever ``init_timeout`` says
    (measured with wandb 0.31); one connection attempt bounds the wait by ``timeout`` instead.
    """
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "api.wandb.ai", port), timeout=timeout):
        pass


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with kexue's defaults.

    - ``mode=None`` picks ``$WANDB_MODE`` if set, else ``"online"`` when credentials are found and
      ``"offline"`` otherwise, so a run never stops to ask for a login.
    - ``save_dir`` is the run's own directory: the CLI gives each run a fresh one
      (:func:`fresh_run_dir`), so no earlier run is overwritten.
    - Online, one line says at once that W&B is being contacted, and a run that cannot reach it falls back
      within ``init_timeout`` seconds (default 20) instead of stalling.
    - If W&B cannot start (bad key, no network, a broken install), training goes on: a one-line warning
      says so and metrics and hyperparameters go to ``metrics.csv``/``hparams.yaml`` in the run directory.

    Args:
        save_dir: the run's directory.
        project: W&B project.
        name: run name (W&B picks one when None).
        group: W&B group (kexue's CLI fills in the task name when None).
        tags: W&B tags.
        job_type: W&B job type (the CLI sets ``fit``, ``test``...).
        mode: ``"online"``, ``"offline"``, ``"disabled"`` or None (automatic, see above).
        log_model: upload checkpoints as W&B artifacts (not possible offline).
        init_timeout: seconds an online run waits for W&B before falling back to CSV.
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
        init_timeout: float = 20.0,
        **kwargs: Any,
    ) -> None:
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if wandb_credentials_found() else "offline")
        self._fallback: _CsvRun | None = None
        if self.mode == "online" and "settings" not in kwargs:
            import wandb

            kwargs["settings"] = wandb.Settings(init_timeout=init_timeout)
        self.init_timeout = init_timeout
        super().__init__(
            name=name,
            save_dir=save_dir,
            project=project,
            log_model=log_model and self.mode == "online",
            group=group,
            tags=tags,
            job_type=job_type,
            mode=self.mode,
            **kwargs,
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The W&B run, or after W&B failed to start, a stand-in that writes to CSV."""
        if self._fallback is not None:
            return self._fallback
        try:
            if self._experiment is None and self.mode == "online":
                print(f"kexue: connecting to W&B (online; falls back to CSV after {self.init_timeout:g} s)",
                      file=sys.stderr, flush=True)
                check_reachable(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"), self.init_timeout)
            return _LightningWandbLogger.experiment.fget(self)
        except Exception as err:  # wandb raises many kinds (CommError, UsageError, AuthenticationError...)
            self._fallback = _CsvRun(self.save_dir)
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            print(
                f"kexue: warning: W&B unavailable ({reason}); logging to {self._fallback.path} instead",
                file=sys.stderr,
                flush=True,
            )
            return self._fallback

    def finish(self) -> None:
        """Close the W&B run (flushes config and summary); Lightning leaves it open at exit."""
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._experiment.finish()
        if self._fallback is not None:
            self._fallback.finish()

    def offline_hint(self) -> str | None:
        """Where an offline run was written and the command that uploads it, or None."""
        if self._fallback is not None:
            return f"W&B was unavailable; metrics of this run are in {self._fallback.path}"
        if self.mode not in ("offline", "dryrun") or self._experiment is None:
            return None
        run_dir = Path(self._experiment.dir).parent
        return f"W&B offline run saved in {run_dir}; upload it with: wandb sync {run_dir}"


class _CsvRun:
    """Stands in for a ``wandb.Run`` that could not start: numbers go to a CSVLogger, the rest is dropped."""

    def __init__(self, save_dir: str | None) -> None:
        self._csv = CSVLogger(save_dir or ".", name="", version="")
        self.path = os.path.join(self._csv.log_dir, "metrics.csv")
        self.id, self.dir, self.config = "csv", self._csv.log_dir, self

    def update(self, params: dict[str, Any], allow_val_change: bool = False) -> None:
        self._csv.log_hyperparams(params)

    def log(self, data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        step = data.get("trainer/global_step")
        numbers = {k: v for k, v in data.items() if isinstance(v, (int, float)) and k != "trainer/global_step"}
        if numbers:
            self._csv.log_metrics(numbers, step=step)

    def finish(self) -> None:
        self._csv.save()

    def __getattr__(self, name: str) -> Any:  # watch, define_metric, log_artifact...: nothing to do offline
        return lambda *args, **kwargs: None
