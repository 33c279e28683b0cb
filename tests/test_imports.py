"""Every module under app/ imports on its own, in a fresh interpreter.

An import cycle hides as long as some other module happens to be imported first (the test
suite imports many): only a new process per module shows it. The interpreters run in
parallel, one per core, yet the tree takes a minute or more on two
shared cores (torch, faster-whisper and friends load again in each), hence `slow`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"


def app_modules() -> list[str]:
    modules = []
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(parts))
    return modules


def import_alone(module: str) -> tuple[str, int, str]:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=APP.parent,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
    )
    return module, result.returncode, result.stderr


def test_app_has_modules() -> None:
    assert "app.resolvers.calls" in app_modules()
    assert "app.schema.build" in app_modules()


@pytest.mark.slow
def test_every_app_module_imports_on_its_own() -> None:
    modules = app_modules()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        failures = [
            f"{module}:\n{stderr}"
            for module, returncode, stderr in pool.map(import_alone, modules)
            if returncode != 0
        ]
    assert not failures, "\n\n".join(failures)


# Which packages a layer may not import: the API layer never reaches the worker, and the
# domain (services, ML, storage, database) never reaches GraphQL or the worker.
LAYER_RULES = {
    "app.core": (
        "app.api",
        "app.cli",
        "app.dev",
        "app.schema",
        "app.resolvers",
        "app.services",
        "app.workers",
        "app.ml",
        "app.db",
        "app.storage",
        "app.auth",
        "app.rules",
    ),
    "app.api": ("app.workers", "app.cli", "app.dev"),
    "app.schema": ("app.workers",),
    "app.resolvers": ("app.workers",),
    "app.services": ("app.schema", "app.resolvers", "app.workers", "app.cli", "app.dev"),
    "app.ml": (
        "app.schema",
        "app.resolvers",
        "app.workers",
        "app.services",
        "app.api",
        "app.dev",
    ),
    "app.db": ("app.schema", "app.resolvers", "app.workers", "app.services"),
    "app.storage": ("app.schema", "app.resolvers", "app.workers"),
}


def imported_modules(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_layers_import_only_downwards() -> None:
    """Static: reads every module's imports (lazy ones inside functions included)."""
    violations = []
    for path in sorted(APP.rglob("*.py")):
        module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        for layer, forbidden in LAYER_RULES.items():
            if module != layer and not module.startswith(layer + "."):
                continue
            for imported in imported_modules(path):
                if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                    violations.append(f"{module} imports {imported}")
    assert not violations, "\n".join(violations)
