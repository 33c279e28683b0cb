"""Compute for the speech models: device choice, thread counts, a model cache,
and CUDA out-of-memory turned into an error an operator can act on.

Workers build one `SpeechPipeline` at start-up; every model it needs is created through
`MODELS.get(key, factory)`, so a second pipeline with the same configuration in the same
process (the CLI processing several files, a worker running many jobs) reuses the loaded
weights instead of loading them again.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

from app.core.errors import ProcessingError

T = TypeVar("T")


class OutOfMemory(ProcessingError):
    """The GPU ran out of memory; the message says what to change."""


class ModelLoadError(ProcessingError):
    """A model could not be loaded (missing files, no GPU, missing optional package)."""


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def effective_threads(cpu_threads: int) -> int:
    """CPU_THREADS=0 means every core this process may run on."""
    return cpu_threads if cpu_threads > 0 else available_cpus()


def resolve_device(setting: str) -> str:
    """`auto` -> "cuda" when torch sees a GPU, else "cpu"; `cuda` without a GPU is an error
    rather than a silent 50x slowdown on CPU."""
    if setting == "cpu":
        return "cpu"
    cuda = _cuda_available()
    if setting == "cuda" and not cuda:
        raise ModelLoadError(
            "DEVICE=cuda but no CUDA GPU is visible to torch; install the CUDA build of torch, "
            "expose the GPU to the container (NVIDIA runtime), or set DEVICE=cpu"
        )
    if setting not in {"auto", "cuda"} and not setting.startswith("cuda:"):
        raise ModelLoadError(f"unknown DEVICE {setting!r}; use auto, cpu or cuda")
    if setting == "auto":
        return "cuda" if cuda else "cpu"
    return setting


GPU_DRIVER_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")
"""What a GPU driver puts on a Linux machine (NVIDIA, NVIDIA under WSL2, ROCm): without any of
them torch cannot see a GPU."""


def _cuda_available() -> bool:
    if sys.platform == "linux" and not any(os.path.exists(p) for p in GPU_DRIVER_PATHS):
        # No driver, so torch would answer False: its import (about 1.5 s of a worker's
        # start-up) need not come first, before the models that can load meanwhile.
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


_threads_lock = threading.Lock()


def configure_threads(cpu_threads: int) -> int:
    """Apply one intra-op thread count to torch and to the env that onnxruntime / OpenMP /
    CTranslate2 read; returns the count. Call after importing model packages: silero_vad
    sets torch to one thread at import time."""
    threads = effective_threads(cpu_threads)
    with _threads_lock:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            import torch
        except ImportError:
            return threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return threads


class ModelCache:
    """Loaded models keyed by their configuration; one load per key per process.

    Loading holds a per-key lock so two threads asking for one model load it once.
    """

    def __init__(self) -> None:
        self._models: dict[Hashable, object] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        with self._lock:
            if key in self._models:
                return cast(T, self._models[key])
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    return cast(T, self._models[key])
            model = factory()
            with self._lock:
                self._models[key] = model
            return model


MODELS = ModelCache()
"""The process's model cache."""


_OOM_MARKERS = ("out of memory", "cuda_error_out_of_memory", "cublas_status_alloc_failed")


def is_out_of_memory(error: BaseException) -> bool:
    try:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return isinstance(error, RuntimeError | MemoryError) and any(
        marker in str(error).lower() for marker in _OOM_MARKERS
    )


@contextmanager
def out_of_memory_as_error(device: str, what: str) -> Iterator[None]:
    """Turn a CUDA OOM (torch or CTranslate2) inside the block into `OutOfMemory` with the
    settings that help, and release torch's cached blocks so the worker survives to run
    the next job."""
    try:
        yield
    except OutOfMemory:
        raise
    except (RuntimeError, MemoryError) as error:
        if not device.startswith("cuda") or not is_out_of_memory(error):
            raise
        _empty_cuda_cache()
        raise OutOfMemory(
            f"GPU out of memory while {what}. Lower STT_BATCH_SIZE, use a smaller STT_MODEL or "
            "STT_COMPUTE_TYPE=int8_float16, run one job per GPU (WORKER_CONCURRENCY=1), "
            "or set DEVICE=cpu"
        ) from error


def _empty_cuda_cache() -> None:
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # noqa: S110 - best effort on a path that is already failing
        pass


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast(Callable[[int], int], ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):
        return None


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc; elsewhere a no-op).

    The models' native code allocates a buffer per input shape, and glibc keeps what they
    free for reuse; speech turns all differ in length, so over a long call the freed pieces
    piled up (about 200 MB retained after a 30-minute call's pipeline). Called between
    stages and once a second within them: 0.07-0.35 ms a call after a 30 s call.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
