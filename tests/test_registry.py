"""Registry discovery through real (fake-installed) distributions on sys.path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from kexue.registry import PLUGIN_API_VERSION, RegistryError, Task, discover, get_task, list_tasks

from .conftest import assert_one_line_error, kexue


def install_fake_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Write ``<dist>-1.0.dist-info`` (METADATA + entry_points.txt) and modules under ``root``."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[kexue.tasks]\n{lines}\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


GOOD = """
from kexue.registry import Task
TASK = Task(name="{name}", summary="a {name} task", module="m:M", datamodule="m:D", api_version={api})
"""


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "good_plugin", {"alpha": "good_mod:TASK"}, {"good_mod": GOOD.format(name="alpha", api=1)})
    install_fake_dist(site, "broken_plugin", {"beta": "broken_mod:TASK"}, {"broken_mod": "import no_such_module\n"})
    install_fake_dist(site, "dup_one", {"gamma": "dup1:TASK"}, {"dup1": GOOD.format(name="gamma", api=1)})
    install_fake_dist(site, "dup_two", {"gamma": "dup2:TASK"}, {"dup2": GOOD.format(name="gamma", api=1)})
    install_fake_dist(site, "future_plugin", {"delta": "future_mod:TASK"}, {"future_mod": GOOD.format(name="delta", api=99)})
    install_fake_dist(site, "misnamed", {"eps": "misnamed_mod:TASK"}, {"misnamed_mod": GOOD.format(name="other", api=1)})
    monkeypatch.syspath_prepend(str(site))
    for mod in ("good_mod", "broken_mod", "dup1", "dup2", "future_mod", "misnamed_mod"):
        sys.modules.pop(mod, None)
    return site


def test_builtin_task_registered_through_entry_points() -> None:
    entry = discover()["sentiment"]
    assert entry.status == "ok" and entry.dist.startswith("kexue ")
    task = get_task("sentiment")
    assert task.metric == "test/acc" and task.config_path().name == "sentiment.yaml"


def test_good_broken_duplicate_and_incompatible(fake_site: Path) -> None:
    registry = discover()
    assert registry["alpha"].status == "ok" and registry["alpha"].dist == "good_plugin 1.0"
    assert registry["beta"].status == "broken"
    assert "ModuleNotFoundError" in registry["beta"].error and "no_such_module" in registry["beta"].error
    assert registry["gamma"].status == "duplicate"
    assert "dup_one 1.0" in registry["gamma"].error and "dup_two 1.0" in registry["gamma"].error
    assert registry["delta"].status == "incompatible" and f"provides API {PLUGIN_API_VERSION}" in registry["delta"].error
    assert registry["eps"].status == "broken" and "'other'" in registry["eps"].error
    # One broken plugin takes nothing else down.
    assert registry["sentiment"].status == "ok"
    assert get_task("alpha").summary == "a alpha task"
    with pytest.raises(RegistryError, match="dup_one 1.0 and dup_two 1.0"):
        get_task("gamma")
    with pytest.raises(RegistryError, match="plugin API 99"):
        get_task("delta")


def test_list_tasks_pattern(fake_site: Path) -> None:
    assert [e.name for e in list_tasks("a*")] == ["alpha"]
    assert {"alpha", "beta", "gamma", "delta", "sentiment"} <= {e.name for e in list_tasks()}


def test_unknown_task() -> None:
    with pytest.raises(RegistryError, match="unknown task 'nope'.*sentiment"):
        get_task("nope")


def test_lazy_references_resolve() -> None:
    task = Task(name="t", summary="", module="collections:OrderedDict", datamodule="collections:Counter")
    assert task.module_class().__name__ == "OrderedDict"
    with pytest.raises(RegistryError, match="cannot be imported"):
        Task(name="t", summary="", module="collections:Nope", datamodule="x:y").module_class()


def test_cli_lists_broken_plugins(fake_site: Path) -> None:
    proc = kexue("tasks", env={"PYTHONPATH": str(fake_site)})
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert rows["alpha"].rstrip().endswith("ok")
    assert "broken: ModuleNotFoundError" in rows["beta"]
    assert "duplicate:" in rows["gamma"] and "dup_two 1.0" in rows["gamma"]
    assert "incompatible:" in rows["delta"]


@pytest.mark.parametrize(("args", "fragments"), [
    (("fit", "gamma"), ("dup_one 1.0 and dup_two 1.0",)),
    (("run", "delta"), ("plugin API 99",)),
    (("test", "beta"), ("broken", "no_such_module")),
], ids=["duplicate", "incompatible", "broken"])
def test_cli_refuses_unusable_plugins(fake_site: Path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_one_line_error(kexue(*args, env={"PYTHONPATH": str(fake_site)}), *fragments)
