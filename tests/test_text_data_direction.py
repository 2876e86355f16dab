"""``kexue.text`` and ``kexue.data`` import each other in one direction only: the data layer may use text tools,
text tools never import the data layer (docs/architecture.md, "The layers"). Read from the sources with ``ast``, so
an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import kexue

ROOT = Path(kexue.__file__).parent


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` (a module of ``package``, e.g. ``"kexue.text"``) imports, and of
    every name it imports from one (``from . import x`` resolved against ``package``)."""
    parts = package.split(".")
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    return names


def data_imports(names: set[str]) -> set[str]:
    return {name for name in names if name == "kexue.data" or name.startswith("kexue.data.")}


def test_text_never_imports_data() -> None:
    files = sorted((ROOT / "text").rglob("*.py"))
    assert len(files) >= 5  # the package is where this test looks for it
    offending = set()
    for path in files:
        package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
        offending |= {f"{path.name} -> {name}" for name in
                      data_imports(imported_modules(path.read_text(encoding="utf-8"), package))}
    assert not offending, sorted(offending)


def test_the_reader_sees_imports_inside_functions_and_relative_ones() -> None:
    source = ("import kexue.data\n"
              "def f():\n    from kexue.data.packages import package_file\n"
              "from .. import data\nfrom ..data.readers import read_text_lines\nfrom . import corpus\n")
    assert data_imports(imported_modules(source, "kexue.text")) == {
        "kexue.data", "kexue.data.packages", "kexue.data.packages.package_file", "kexue.data.readers",
        "kexue.data.readers.read_text_lines"}
    assert not data_imports(imported_modules("from kexue.text.corpus import encode\nimport kexue.datasets\n",
                                             "kexue.text"))
