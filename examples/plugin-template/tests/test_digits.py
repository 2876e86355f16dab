"""The plugin's own test: its task runs through kexue's CLI."""

from kexue.cli import main  # plugin API 1: stable across kexue 0.x


def test_fast_dev_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "digits", "--trainer.fast_dev_run=1", "--logger", "none"]) == 0
