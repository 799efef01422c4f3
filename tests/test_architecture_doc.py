"""ARCHITECTURE.md is the map of the package: every module it names exists, and every module is named."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "deepfake_detect"


def _named_modules() -> set[str]:
    text = (REPO / "ARCHITECTURE.md").read_text()
    return {m for m in re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)`", text) if not m.startswith("tests/")}


def _package_modules() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


def test_every_module_named_in_the_map_exists():
    missing = sorted(_named_modules() - _package_modules())
    assert not missing, f"ARCHITECTURE.md names modules that do not exist: {missing}"


def test_every_module_is_named_in_the_map():
    # A subpackage's __init__.py may go unnamed: the map names it once, as each package's public surface.
    unnamed = sorted(m for m in _package_modules() - _named_modules() if not m.endswith("/__init__.py"))
    assert not unnamed, f"modules missing from ARCHITECTURE.md (add each to its layer's row): {unnamed}"


def test_the_map_names_the_layers_of_the_import_contract():
    contract = (REPO / "pyproject.toml").read_text()
    layers = re.search(r"layers = \[(.*?)\]", contract, re.S).group(1)
    names = {n.strip() for part in re.findall(r'"([^"]+)"', layers) for n in part.split("|")}
    text = (REPO / "ARCHITECTURE.md").read_text()
    absent = sorted(n for n in names if n not in text)
    assert not absent, f"layers of the import-linter contract that ARCHITECTURE.md does not mention: {absent}"
