from __future__ import annotations

import threading
import time

import pytest

from app.ml.types import Stage, overall_progress
from app.workers.processor import JobDeadlineExceeded, JobSuperseded, ThrottledProgress


def test_progress_is_monotonic_across_stages_and_throttled() -> None:
    seen: list[tuple[Stage, float]] = []
    hook = ThrottledProgress(
        lambda stage, done, total: seen.append((stage, overall_progress(stage, done, total))),
        time.monotonic() + 60,
    )
    for stage in (Stage.DECODING, Stage.DIARIZING, Stage.TRANSCRIBING, Stage.ANALYZING):
        for done in range(101):
            hook(stage, done, 100)
    progress = [p for _, p in seen]
    assert progress == sorted(progress)
    assert progress[-1] == pytest.approx(1.0)
    # One report per stage change plus one per 5 % step, not one per call.
    assert len(seen) < 40
    assert overall_progress(Stage.TRANSCRIBING, 0, 0) == overall_progress(Stage.TRANSCRIBING, 0, 1)


def test_the_hook_stops_a_pipeline_past_its_deadline_or_superseded() -> None:
    late = ThrottledProgress(lambda stage, done, total: None, time.monotonic() - 1)
    with pytest.raises(JobDeadlineExceeded):
        late(Stage.DIARIZING, 1, 2)
    superseded = threading.Event()
    hook = ThrottledProgress(lambda stage, done, total: None, time.monotonic() + 60, superseded)
    hook(Stage.DIARIZING, 1, 2)
    superseded.set()
    with pytest.raises(JobSuperseded):
        hook(Stage.TRANSCRIBING, 1, 2)
