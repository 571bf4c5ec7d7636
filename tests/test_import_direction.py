"""The packages depend one way: akd_core <- akd_service <- app | worker <- akd_tools.

Every .py file of each package is parsed (imports inside functions count too), so a lazy
import cannot hide a dependency that the layering forbids.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# For each package, the service packages it must never import (third-party ones are free).
FORBIDDEN: dict[str, frozenset[str]] = {
    "akd_core": frozenset({"akd_service", "app", "worker", "akd_tools"}),
    "akd_service": frozenset({"app", "worker", "akd_tools"}),
    "app": frozenset({"worker", "akd_tools"}),
    "worker": frozenset({"app", "akd_tools"}),
    "akd_tools": frozenset(),
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in `tree`, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, root: Path = ROOT) -> list[str]:
    """'file:line imports module' for each forbidden import in `package`."""
    forbidden = FORBIDDEN[package]
    out = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(root)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_package_imports_only_the_layers_below_it(package):
    assert (ROOT / package / "__init__.py").is_file(), f"{package}/ is not a package"
    found = violations(package)
    assert not found, (
        f"{package} must not import {', '.join(sorted(FORBIDDEN[package]))}:\n" + "\n".join(found)
    )


def test_a_forbidden_import_inside_a_function_is_found(tmp_path):
    # The check itself: a lazy import in a function body is a dependency all the same.
    pkg = tmp_path / "akd_service"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lazy.py").write_text("def f():\n    from worker.runner import execute_job\n")
    assert violations("akd_service", tmp_path) == ["akd_service/lazy.py:2 imports worker.runner"]
