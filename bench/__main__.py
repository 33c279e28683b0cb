"""Run every benchmark module in this folder that has a `main()`, in name order."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# Run on their own: `make bench-gpu` needs a GPU, which `make bench` (and CI) does not have.
SEPARATE = {"gpu"}


def main() -> int:
    failed = 0
    folder = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in SEPARATE:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        entry = getattr(module, "main", None)
        if entry is None:
            continue
        print(f"=== bench.{info.name} ===", flush=True)
        result = entry()
        if isinstance(result, int) and result != 0:
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
