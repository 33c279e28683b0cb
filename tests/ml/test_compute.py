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


def test_a_stage_without_progress_reports_releases_a_long_calls_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Language identification walks the call turn by turn and reports nothing; its
    per-turn callback must drop the file-backed samples it has read from resident memory."""
    from app.ml.speech import pipeline
    from app.ml.speech.audio import allocate_samples

    monkeypatch.setattr(pipeline, "RELEASE_INTERVAL_S", 0.0)
    samples = allocate_samples(1, 16_000 * 60 * 10, file_backed=True)[0]  # 10 min, 38 MB
    samples[:] = 0.25  # every page read and written, as a stage reading the call would
    process = psutil.Process()
    before = process.memory_info().rss
    pipeline.releasing_memory(samples)()
    after = process.memory_info().rss
    assert before - after > 30 * 2**20, (before, after)
    assert float(samples[12_345]) == 0.25, "the data stays in the file"
