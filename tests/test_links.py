"""Checked links: every ``Task.links`` / ``Task.data_links`` end names a real argument, for every built-in task and
the plugin template; a typo'd end is found (each one, by mutation) and `kexue run` refuses such a task in one line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from jsonargparse import lazy_instance
from torch import nn

from kexue.errors import UsageError
from kexue.platform.cli import main
from kexue.registry import Task, check_links, link_problems, list_tasks

from .test_registry import install_fake_dist

REPO = Path(__file__).resolve().parent.parent
TASKS = {entry.name: entry.task for entry in list_tasks() if entry.status == "ok"}


def typo(key: str) -> str:
    """``key`` with its last segment misspelt (``model.encoder.init_args.num_embeddings`` -> ``...num_embeddingsx``)."""
    return key + "x"


def test_every_builtin_task_has_a_link_to_check() -> None:
    # Guards the loops below against checking nothing (a registry that lost its entry points, say).
    assert sum(len(t.links) + len(t.data_links) for t in TASKS.values()) >= 30


@pytest.mark.parametrize("name", sorted(TASKS))
def test_builtin_links_name_real_arguments(name: str) -> None:
    assert link_problems(TASKS[name]) == []


@pytest.mark.parametrize("name", sorted(n for n, t in TASKS.items() if t.links or t.data_links))
def test_each_typo_in_a_builtin_link_is_found(name: str) -> None:
    """Misspell one end of one link at a time: exactly that link is reported, naming the misspelt argument (the
    check of the test above could otherwise pass by accepting anything)."""
    task = TASKS[name]
    for kind in ("links", "data_links"):
        pairs = getattr(task, kind)
        for i, (source, target) in enumerate(pairs):
            for end in (0, 1):
                pair = (typo(source), target) if end == 0 else (source, typo(target))
                broken = dataclasses.replace(task, **{kind: (*pairs[:i], pair, *pairs[i + 1:])})
                problems = link_problems(broken)
                missing = pair[end].rsplit(".", 1)[-1]
                assert len(problems) == 1, (kind, pair, problems)
                assert f"{kind} {pair!r}" in problems[0] and repr(missing) in problems[0], problems[0]


@dataclasses.dataclass
class Stack:
    """A config group the model takes as a dataclass (as a ``TransformerConfig``)."""

    width: int = 8


class Model:
    """Stands in for a LightningModule: a component with a ``lazy_instance`` default, a dataclass, a plain value."""

    def __init__(self, encoder: nn.Module = lazy_instance(nn.Embedding, num_embeddings=4, embedding_dim=2),  # noqa: B008
                 stack: Stack = Stack(), lr: float = 0.1, **kwargs: object) -> None:  # noqa: B008
        self.kwargs = kwargs


class Data:
    """Stands in for a LightningDataModule: an argument, a property, an attribute set in a method."""

    def __init__(self, num_buckets: int = 4) -> None:
        self.num_buckets = num_buckets

    @property
    def num_pieces(self) -> int:
        return 3

    def setup(self, stage: str) -> None:
        self.labels = ["a", "b"]


FAKE = Task(name="fake", summary="", module=Model, datamodule=Data)


@pytest.mark.parametrize(("kind", "link", "why"), [
    ("links", ("data.num_buckets", "model.encoder.init_args.num_embeddings"), None),
    ("links", ("data.num_buckets", "model.stack.width"), None),
    ("data_links", ("data.num_pieces", "model.lr"), None),
    ("data_links", ("data.labels", "model.lr"), None),
    ("data_links", ("data.num_buckets", "model.lr"), None),
    ("links", ("data.num_bucketz", "model.encoder.init_args.num_embeddings"), "Data has no argument 'num_bucketz'"),
    ("links", ("data.num_buckets", "model.encodr.init_args.num_embeddings"), "Model has no argument 'encodr'"),
    ("links", ("data.num_buckets", "model.encoder.init_args.num_embedding"), "Embedding has no argument 'num_embedding'"),
    ("links", ("data.num_buckets", "model.lr.init_args.x"), "Model.lr has no lazy_instance default"),
    ("links", ("data.num_buckets", "model.encoder.init_args"), "names no argument after 'init_args'"),
    ("links", ("data.num_buckets", "model.stack.widht"), "Stack has no field 'widht'"),
    ("links", ("data.num_buckets", "model.lr.x"), "Model.lr is neither a component (init_args) nor a dataclass"),
    ("links", ("data.num_buckets", "encoder.init_args.num_embeddings"), "must be 'model.<argument>' or 'data.<argument>'"),
    ("data_links", ("data.num_piece", "model.lr"), "Data has no attribute, property or argument 'num_piece'"),
    ("links", ("data.num_pieces", "model.lr"), "Data has no argument 'num_pieces'"),  # parse time: a property is no argument
])
def test_what_a_link_check_says(kind: str, link: tuple[str, str], why: str | None) -> None:
    problems = link_problems(dataclasses.replace(FAKE, **{kind: (link,)}))
    if why is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(f"task 'fake': {kind} {link!r}: "), problems
        assert why in problems[0], problems


def test_check_links_raises_one_line_naming_the_task_and_asking_for_a_report() -> None:
    task = dataclasses.replace(FAKE, links=(("data.labelz", "model.lr"), ("data.x", "model.y")))
    with pytest.raises(UsageError) as info:
        check_links(task)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("task 'fake': links ('data.labelz', 'model.lr'): Data has no argument 'labelz' "
                              "(and 2 more); a bug in the plugin")  # data.x and model.y
    assert "report it" in message


@pytest.fixture
def template_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Task:
    """The plugin template's Task, importable as ``kexue_digits.*`` as its pyproject.toml maps it (no install)."""
    template = REPO / "examples" / "plugin-template"
    package = tmp_path / "kexue_digits"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for sub in ("plugins", "lightning_modules", "datamodules", "conf"):
        (package / sub).symlink_to(template / sub, target_is_directory=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("kexue_digits")]:
        monkeypatch.delitem(sys.modules, name)
    from kexue_digits.plugins.digits import TASK

    return TASK


def test_plugin_template_links(template_task: Task) -> None:
    assert link_problems(template_task) == []
    assert link_problems(dataclasses.replace(template_task, data_links=(("data.batch_size", "model.hidden_dim"),))) == []
    broken = dataclasses.replace(template_task, links=(("data.batch_size", "model.hiden_dim"),))
    assert link_problems(broken) == ["task 'digits': links ('data.batch_size', 'model.hiden_dim'): DigitsMLP has no "
                                     "argument 'hiden_dim'"]


TYPO_PLUGIN = """
from kexue.registry import Task
TASK = Task(name="typo", summary="sentiment with a typo'd link", module="kexue.lightning_modules.text_classifier:TextClassifier",
            datamodule="kexue.datamodules.sentiment:SentimentDataModule", config="kexue.conf:sentiment.yaml",
            links=(("data.labels", "model.no_such_argument"),))
"""


def test_run_refuses_a_task_with_a_broken_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The user gets one line and exit 2 before any data is read, and `kexue tasks` still lists the task (the check
    imports the task's classes: listing never does)."""
    site = tmp_path / "site"
    install_fake_dist(site, "typo_plugin", {"typo": "typo_mod:TASK"}, {"typo_mod": TYPO_PLUGIN})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "typo_mod", raising=False)
    assert main(["tasks", "typo"]) == 0
    assert capsys.readouterr().out.splitlines()[1].rstrip().endswith("ok")
    assert main(["run", "typo", "--trainer.fast_dev_run=1", "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kexue: error: task 'typo': links ('data.labels', 'model.no_such_argument'): ")
    assert "has no argument 'no_such_argument'" in err[0] and "report it" in err[0]
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_runtime_arguments_name_real_model_arguments() -> None:
    """``runtime_arguments`` (the decoding / evaluation knobs a checkpoint must not override at predict/test) name
    arguments of their LightningModule: a misspelt one would silently fall back to the checkpoint's value."""
    import inspect

    listed = {name: getattr(t.module_class(), "runtime_arguments", ()) for name, t in TASKS.items()}
    assert {"language_model", "cond_lm", "relation_extraction", "reading_comprehension", "flow",
            "sentence_similarity"} <= {n for n, args in listed.items() if args}
    for name, args in listed.items():
        params = inspect.signature(TASKS[name].module_class().__init__).parameters
        assert set(args) <= params.keys(), (name, set(args) - params.keys())
