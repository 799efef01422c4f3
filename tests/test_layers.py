"""The package's layering holds: the import-linter contract catches an upward import, and no modules form a cycle.

The contract itself lives in pyproject.toml (``[tool.importlinter]``); ``make lint`` and ``make test`` run it on
the tree. These tests check that the contract can fail, and look for import cycles, which a layers contract
does not see inside one subpackage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "deepfake_detect"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
UPWARD_IMPORT = "from deepfake_detect.scan import detector  # noqa: F401\n"


def copy_package(root: Path) -> Path:
    """Copy the package source and pyproject.toml (which holds the contract) under ``root``; return ``root``."""
    shutil.copytree(
        REPO / "src" / PACKAGE, root / "src" / PACKAGE, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the copy under ``root``; its ``src`` comes first on the path, ahead of the install."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "pyproject.toml", "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # each runs lint-imports in a subprocess; `make test-fast` runs it on the tree
def test_contract_is_kept_by_an_unmodified_copy(tmp_path):
    result = lint_imports(copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.slow
def test_contract_catches_an_upward_import_from_core_to_scan(tmp_path):
    root = copy_package(tmp_path)
    planted = root / "src" / PACKAGE / "core" / "planted.py"
    planted.write_text('"""A core module that reaches up into scan."""\n\n' + UPWARD_IMPORT)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deepfake_detect.core is not allowed to import deepfake_detect.scan" in result.stdout
    assert "deepfake_detect.core.planted -> deepfake_detect.scan.detector (l.3)" in result.stdout


@pytest.mark.slow
def test_contract_catches_an_import_between_independent_siblings(tmp_path):
    root = copy_package(tmp_path)
    planted = root / "src" / PACKAGE / "training" / "planted.py"
    planted.write_text(
        '"""A training module that uses inference, its sibling."""\n\nimport deepfake_detect.inference\n'
    )
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deepfake_detect.training.planted -> deepfake_detect.inference (l.3)" in result.stdout


@pytest.mark.slow
def test_contract_catches_evaluation_importing_scan(tmp_path):
    # evaluation sits above scan in the layers, so only the second contract stops it reaching down into scan.
    root = copy_package(tmp_path)
    planted = root / "src" / PACKAGE / "evaluation" / "planted.py"
    planted.write_text('"""An evaluation module that scores through scan."""\n\n' + UPWARD_IMPORT)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Evaluation does not import scan BROKEN" in result.stdout
    assert "deepfake_detect.evaluation.planted -> deepfake_detect.scan.detector (l.3)" in result.stdout


def strongly_connected_components(graph: grimp.ImportGraph) -> list[set[str]]:
    """Every group of two or more modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return components


def describe_cycle(graph: grimp.ImportGraph, component: set[str]) -> str:
    """One cycle through ``component``, each import with its file line."""
    start = min(component)
    following = next(m for m in sorted(graph.find_modules_directly_imported_by(start)) if m in component)
    chain = (start, *graph.find_shortest_chain(importer=following, imported=start))
    steps = []
    for importer, imported in pairwise(chain):
        details = graph.get_import_details(importer=importer, imported=imported)
        lines = ", ".join(f"l.{d['line_number']}" for d in details)
        steps.append(f"  {importer} -> {imported} ({lines})")
    return f"cycle among {sorted(component)}:\n" + "\n".join(steps)


def test_no_import_cycles_in_the_package_counting_function_level_imports():
    # grimp reads every import statement, including those inside functions and under TYPE_CHECKING.
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles = [describe_cycle(graph, component) for component in strongly_connected_components(graph)]
    assert not cycles, "\n".join(cycles)


def test_cycle_finder_sees_a_cycle_inside_a_subpackage_and_nothing_in_a_chain():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.sub.c", "pkg.top"):
        graph.add_module(module)
    graph.add_import(
        importer="pkg.top", imported="pkg.sub.a", line_number=1, line_contents="import pkg.sub.a"
    )
    graph.add_import(
        importer="pkg.sub.a", imported="pkg.sub.b", line_number=2, line_contents="import pkg.sub.b"
    )
    graph.add_import(
        importer="pkg.sub.b", imported="pkg.sub.c", line_number=3, line_contents="import pkg.sub.c"
    )
    assert strongly_connected_components(graph) == []

    graph.add_import(
        importer="pkg.sub.c", imported="pkg.sub.a", line_number=9, line_contents="import pkg.sub.a"
    )
    assert strongly_connected_components(graph) == [{"pkg.sub.a", "pkg.sub.b", "pkg.sub.c"}]
    described = describe_cycle(graph, {"pkg.sub.a", "pkg.sub.b", "pkg.sub.c"})
    assert "pkg.sub.c -> pkg.sub.a (l.9)" in described
