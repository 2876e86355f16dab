"""Install paths a user takes: the wheel in a fresh venv, and a third-party plugin from the template."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO, kexue


def pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(REPO))
    (wheel,) = (tmp_path / "dist").glob("kexue-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("kexue/cli.py", "kexue/plugins/sentiment.py", "kexue/lightning_modules/text_classifier.py",
                     "kexue/datamodules/sentiment.py", "kexue/conf/sentiment.yaml", "kexue/conf/trainer/ddp.yaml",
                     "kexue/conf/logger/csv.yaml", "kexue/tests/test_cli.py"):
        assert required in names, required
    for init in (REPO / "kexue").rglob("__init__.py"):  # pyproject lists packages by hand: none may be forgotten
        package = init.relative_to(REPO).as_posix()
        assert package in names, f"{package}: a package missing from pyproject's [tool.setuptools] packages"
    # A bare venv with no torch: listing tasks must still work, as it imports nothing heavy.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip("--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel))
    proc = subprocess.run([str(venv / "bin" / "kexue"), "tasks"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("sentiment "))
    assert "kexue 0.1.0" in row and row.rstrip().endswith("ok")


def test_plugin_template_installs_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip("install", "--no-deps", "--no-build-isolation", "--target", str(site), str(REPO / "examples" / "plugin-template"))
    env = {"PYTHONPATH": str(site)}
    listing = kexue("tasks", "digits", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "kexue-digits 0.1.0" in listing.stdout and listing.stdout.rstrip().endswith("ok")
    proc = kexue("run", "digits", "--trainer.max_epochs=3", "--logger", "none", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = float(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("test/acc")))
    assert acc > 0.8  # an MLP reaches ~0.95 on digits in a few epochs; 0.1 would be chance
