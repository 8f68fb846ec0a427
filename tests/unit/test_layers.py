"""The rooms and their import rules (pyproject.toml's import-linter contracts, docs/architecture.md) hold, and
the contracts would catch an import that breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import ftel

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True, check=False
    )


def _contract(contract_id: str) -> dict[str, object]:
    (contract,) = [c for c in CONTRACTS["contracts"] if c["id"] == contract_id]
    return contract


def _modules(layer: str) -> set[str]:
    return {name.strip() for name in layer.replace("|", ":").split(":")}


def _base_modules() -> set[str]:
    """Every module and package directly in ftel but the composition root."""
    package = Path(ftel.__file__).parent
    children = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    children |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    return children - {"app"}


def test_the_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_rooms_contract_names_every_base_module_as_its_bottom_layer() -> None:
    # A module added to ftel and not named there would be outside the rooms contract (the `base` contract,
    # exhaustive, fails on it too).
    layers = _contract("rooms")["layers"]
    assert isinstance(layers, list)
    assert _modules(layers[-1]) == {f"ftel.{name}" for name in _base_modules()}
    base_layers = _contract("base")["layers"]
    assert isinstance(base_layers, list)
    assert base_layers[0] == "app"
    assert set().union(*(_modules(layer) for layer in base_layers[1:])) == _base_modules()


def test_an_import_from_the_base_into_a_shell_breaks_the_contracts(tmp_path: Path) -> None:
    for package in CONTRACTS["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "ftel" / "storage" / "upward.py").write_text("import gateway.runner\n")
    (tmp_path / "ingest" / "sideways.py").write_text("import alerts.engine\n")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0
    assert "ftel.storage is not allowed to import gateway" in result.stdout
    assert "ingest is not allowed to import alerts" in result.stdout
