"""`make bench-gpu` on a machine without CUDA: it must refuse loudly, not measure the CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _cuda_usable() -> bool:
    import ctranslate2
    import torch

    return bool(torch.cuda.is_available()) and ctranslate2.get_cuda_device_count() > 0


@pytest.mark.skipif(_cuda_usable(), reason="CUDA is usable here: bench-gpu would really run")
def test_bench_gpu_without_cuda_exits_2_and_says_why() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "CUDA is not available, nothing was measured" in result.stderr
    assert "torch" in result.stderr and "CTranslate2" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_make_bench_leaves_the_gpu_bench_to_its_own_target() -> None:
    from bench.__main__ import SEPARATE

    assert "gpu" in SEPARATE
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "bench-gpu:" in makefile and "-m bench.gpu" in makefile
