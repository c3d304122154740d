"""The intended house: imports point one way, and only evaluation code reads the ground truth."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connectors", "sandbox", "scoring", "sync", "handoff", "bench")
# package -> the first-party packages it must never import
FORBIDDEN = {
    "scoring": {"connectors", "sandbox", "sync", "handoff", "bench"},
    "connectors": {"sandbox", "scoring", "sync", "handoff", "bench"},
    "sync": {"sandbox", "handoff", "bench"},
    "sandbox": {"connectors", "scoring", "sync", "handoff", "bench"},
    "handoff": {"bench"},
    "bench": {"handoff"},
}
# only evaluation code (tests and benchmarks) may read the ground truth
TRUTH_READERS = {"bench", "sandbox"}


def _imports(file: Path) -> set[str]:
    """Dotted module names a source file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    offences = [
        f"{file.relative_to(ROOT)} imports {name}"
        for file in _sources(package)
        for name in _imports(file)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert not offences, "\n".join(offences)


def _truth_reads(file: Path) -> list[str]:
    """Imports of the truth module and reads of an org's ``.truth`` in a source file."""
    tree = ast.parse(file.read_text(), filename=str(file))
    reads = [
        f"line {node.lineno}: .truth"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "truth"
    ]
    return reads + [
        f"imports {name}" for name in _imports(file) if name.startswith("sandbox.truth")
    ]


@pytest.mark.parametrize("package", sorted(set(PACKAGES) - TRUTH_READERS))
def test_product_code_never_reads_the_ground_truth(package: str) -> None:
    offences = [
        f"{file.relative_to(ROOT)} {read}"
        for file in _sources(package)
        for read in _truth_reads(file)
    ]
    assert not offences, "\n".join(offences)


def test_every_package_declares_its_public_names() -> None:
    missing = [
        str(file.relative_to(ROOT))
        for package in PACKAGES
        for file in _sources(package)
        if file.name not in {"__init__.py", "__main__.py"}
        and "__all__" not in file.read_text()
        and not file.read_text().lstrip().startswith('"""Benchmark')
    ]
    assert not missing, f"modules without __all__: {missing}"
