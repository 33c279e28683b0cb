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
