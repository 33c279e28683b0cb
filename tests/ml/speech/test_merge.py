"""Word-to-speaker merge and the process runtime (device, model cache, OOM)."""

from __future__ import annotations

import threading
import time

import pytest

from app.ml.compute import (
    ModelCache,
    ModelLoadError,
    OutOfMemory,
    out_of_memory_as_error,
    resolve_device,
)
from app.ml.diarization.base import SpeakerTurn
from app.ml.speech.merge import assign_speakers, merge_words_and_turns
from app.ml.types import Word


def words(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in spans]


def test_words_follow_the_turn_they_overlap_most() -> None:
    turns = [
        SpeakerTurn("SPEAKER_00", 0.0, 2.0),
        SpeakerTurn("SPEAKER_01", 1.8, 4.0),
        SpeakerTurn("SPEAKER_00", 5.0, 6.0),
    ]
    ws = words(("hi", 0.1, 0.5), ("there", 1.7, 2.3), ("yes", 2.5, 3.0), ("gap", 4.3, 4.5))
    assert assign_speakers(ws, turns) == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01", "SPEAKER_01"]


def test_segments_never_mix_speakers_even_inside_one_sentence() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 1.0), SpeakerTurn("SPEAKER_01", 1.0, 3.0)]
    ws = words(("so", 0.1, 0.4), ("I", 0.5, 0.9), ("don't", 1.1, 1.4), ("know", 1.5, 1.9))
    segments = merge_words_and_turns(ws, turns)
    assert [(s.speaker, s.text) for s in segments] == [
        ("SPEAKER_00", "so I"),
        ("SPEAKER_01", "don't know"),
    ]
    for segment in segments:
        assert segment.start_s == segment.words[0].start_s
        assert segment.end_s == segment.words[-1].end_s


def test_a_long_pause_starts_a_new_segment_of_the_same_speaker() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 10.0)]
    segments = merge_words_and_turns(words(("a", 0.0, 0.5), ("b", 5.0, 5.5)), turns)
    assert [s.text for s in segments] == ["a", "b"]


def test_model_cache_loads_once_per_key_across_threads() -> None:
    cache = ModelCache()
    loads: list[str] = []

    def factory() -> object:
        loads.append("x")
        time.sleep(0.05)  # a slow load, so the other threads arrive while it runs
        return object()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(("m", 1), factory)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert all(result is results[0] for result in results)
    assert cache.get(("m", 2), object) is not results[0]


def test_device_resolution_on_this_machine() -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="DEVICE=cpu"):
            resolve_device("cuda")


def test_cuda_out_of_memory_becomes_an_actionable_error() -> None:
    with (
        pytest.raises(OutOfMemory, match="STT_BATCH_SIZE"),
        out_of_memory_as_error("cuda", "transcribing"),
    ):
        raise RuntimeError("CUDA failed with error out of memory")
    # On CPU (or for other errors) the original exception is kept.
    with pytest.raises(RuntimeError, match="shape mismatch"), out_of_memory_as_error("cuda", "x"):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="out of memory"), out_of_memory_as_error("cpu", "x"):
        raise RuntimeError("out of memory")


def test_a_speakers_short_pause_stays_inside_their_turn() -> None:
    from app.ml.diarization.base import SpeakerTurn
    from app.ml.diarization.local import join_turns

    turns = [
        SpeakerTurn("A", 0.0, 2.0),
        SpeakerTurn("A", 2.4, 4.0),  # a breath: same turn
        SpeakerTurn("B", 4.1, 6.0),
        SpeakerTurn("B", 7.5, 9.0),  # a real pause: a new turn
    ]
    joined = join_turns(turns, 0.6)
    assert [(t.speaker, t.start_s, t.end_s) for t in joined] == [
        ("A", 0.0, 4.0),
        ("B", 4.1, 6.0),
        ("B", 7.5, 9.0),
    ]
