"""The test loop itself: the slow list names real tests, and the quick loop (`-m "not slow"`) keeps a test of every
file; the list's checks can fail."""

from __future__ import annotations

from pathlib import Path

from .conftest import SlowListReport, check_slow_list, read_slow_list


def test_slow_list_names_existing_tests(slow_list_report: SlowListReport) -> None:
    assert slow_list_report.stale == [], ("tests/slow.txt names tests that do not exist (renamed or removed?): "
                                          "run `python benchmarks/slow_tests.py` or delete those lines")


def test_quick_loop_keeps_a_test_of_every_file(slow_list_report: SlowListReport) -> None:
    assert slow_list_report.all_slow == [], "every test of these files is in tests/slow.txt: keep a quick one"


def test_every_task_runs_in_the_quick_loop() -> None:
    """Each task's default config with fast_dev_run stays quick, whatever it took when measured."""
    listed = read_slow_list()
    assert not [n for n in listed if n.startswith("tests/test_every_task.py::test_fast_dev_run[")], listed


def test_slow_list_checks_can_fail(tmp_path: Path) -> None:
    listed_file = tmp_path / "slow.txt"
    listed_file.write_text("# header\ntests/test_a.py::test_x  # 9.0 s\n\ntests/test_a.py::test_gone\n"
                           "tests/test_b.py::test_y[p]\ntests/test_c.py::test_elsewhere\n", encoding="utf-8")
    listed = read_slow_list(listed_file)
    assert listed == {"tests/test_a.py::test_x": 2, "tests/test_a.py::test_gone": 4, "tests/test_b.py::test_y[p]": 5,
                      "tests/test_c.py::test_elsewhere": 6}
    collected = {"tests/test_a.py::test_x": True, "tests/test_a.py::test_z": False, "tests/test_b.py::test_y[p]": True}
    # test_c.py was not collected whole (one test of it was asked for, say): its line is not judged.
    report = check_slow_list(listed, collected, {"tests/test_a.py", "tests/test_b.py"}, name="slow.txt")
    assert report.stale == ["slow.txt:4: tests/test_a.py::test_gone"]
    assert report.all_slow == ["tests/test_b.py"]
