"""Process-level compute helpers: handing freed C-heap memory back between stages."""

from __future__ import annotations

import platform

import psutil
import pytest

from app.ml import compute


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_heap_gives_freed_heap_pages_back() -> None:
    assert compute._malloc_trim() is not None
    process = psutil.Process()
    # Many heap-sized pieces (under glibc's mmap threshold), then all but every 50th
    # freed: the survivors pin the heap's top, so only a trim returns the free middle.
    pieces = [bytearray(64 * 1024 + (i % 7) * 1024) for i in range(4000)]
    survivors = pieces[::50]
    del pieces
    before = process.memory_info().rss
    compute.trim_heap()
    after = process.memory_info().rss
    assert survivors
    assert before - after > 100 * 2**20, (before, after)
