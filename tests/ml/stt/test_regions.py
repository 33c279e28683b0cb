"""Packing speech regions into buffers and mapping recogniser times back to the call."""

from __future__ import annotations

import numpy as np
import pytest

from app.ml.stt import SAMPLE_RATE
from app.ml.stt.regions import (
    SEPARATOR_S,
    drop_repetition_loops,
    group_regions,
    normalise_regions,
    pack_regions,
    sample_windows,
    spread_over_group,
    spread_words,
)
from app.ml.types import Word


def ramp(seconds: float) -> np.ndarray:
    """Audio whose sample values encode their own time, so packed content can be traced."""
    return (np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE).astype(np.float32)


def test_regions_are_sorted_clipped_and_merged() -> None:
    assert normalise_regions(
        [(5.0, 7.0), (-1.0, 1.0), (0.5, 2.0), (9.0, 12.0), (3.0, 3.01)], 10.0
    ) == [
        (0.0, 2.0),
        (5.0, 7.0),
        (9.0, 10.0),
    ]


def test_packed_buffer_holds_only_the_regions_and_maps_back() -> None:
    audio = ramp(60.0)
    groups = pack_regions(audio, [(1.0, 3.0), (10.0, 11.5), (40.0, 41.0)])
    assert len(groups) == 1
    group = groups[0]
    assert group.duration_s == pytest.approx(2.0 + 1.5 + 1.0 + 2 * SEPARATOR_S)
    # The sample at packed time 2.3 + 0.5 is the one from 10.5 s in the call.
    second = group.pieces[1]
    assert (
        audio[round(10.5 * SAMPLE_RATE)]
        == group.audio[round((second.packed_start_s + 0.5) * SAMPLE_RATE)]
    )
    assert group.to_original(0.5, is_end=False) == pytest.approx(1.5)
    assert group.to_original(second.packed_start_s + 0.5, is_end=False) == pytest.approx(10.5)
    # Inside a separator: a start moves to the next region, an end back to the previous one.
    gap = 2.0 + SEPARATOR_S / 2
    assert group.to_original(gap, is_end=False) == pytest.approx(10.0)
    assert group.to_original(gap, is_end=True) == pytest.approx(3.0)


def test_groups_respect_the_length_limit_and_long_regions_split_on_request() -> None:
    audio = ramp(200.0)
    regions = [(float(s), float(s) + 8.0) for s in range(0, 80, 10)] + [(100.0, 175.0)]
    groups = pack_regions(audio, regions, max_group_s=30.0)
    assert all(g.duration_s <= 30.0 for g in groups[:-1])
    assert groups[-1].duration_s == pytest.approx(75.0)
    split = pack_regions(audio, regions, max_group_s=30.0, split_long=True)
    assert all(g.duration_s <= 30.0 + 1e-6 for g in split)
    assert sum(g.speech_s for g in split) == pytest.approx(8 * 8.0 + 75.0)


def test_a_full_group_ends_at_its_longest_pause_not_inside_a_sentence() -> None:
    # Sentences of 6 s with 1.5 s between them, the last one cut by a 0.2 s pause: a plain
    # greedy packing would end the group between its halves.
    regions = [(s * 7.5, s * 7.5 + 6.0) for s in range(4)] + [(30.0, 32.0), (32.2, 35.0)]
    groups = group_regions(regions, 30.0, SEPARATOR_S)
    assert groups == [regions[:4], [(30.0, 32.0), (32.2, 35.0)]]
    # One region per group stays one per group; a region too long for any group is alone.
    assert group_regions(regions[:3], 0.0, SEPARATOR_S) == [[r] for r in regions[:3]]
    assert group_regions([(0.0, 2.0), (3.0, 40.0)], 30.0, SEPARATOR_S) == [
        [(0.0, 2.0)],
        [(3.0, 40.0)],
    ]


def test_language_windows_cover_the_whole_call() -> None:
    audio = ramp(600.0)
    groups = pack_regions(audio, [(float(s), s + 20.0) for s in range(0, 600, 30)])
    windows = sample_windows(groups, count=5)
    assert len(windows) == 5
    starts = [w.pieces[0].original_start_s for w in windows]
    assert starts[0] == 0.0
    assert starts[-1] >= 570.0


def test_repetition_loop_is_collapsed_but_normal_repeats_survive() -> None:
    def words(text: str) -> list[Word]:
        return [Word(t, float(i), i + 0.5) for i, t in enumerate(text.split())]

    looped = words("please hold thank you. thank you. thank you. thank you. thank you. bye")
    assert [w.text for w in drop_repetition_loops(looped)] == [
        "please",
        "hold",
        "thank",
        "you.",
        "bye",
    ]
    digits = words("one zero zero zero one")
    assert drop_repetition_loops(digits) == digits


def test_spread_words_covers_the_span_in_proportion() -> None:
    words = spread_words("a longerword", 1.0, 3.0)
    assert words[0].start_s == 1.0 and words[-1].end_s == 3.0
    assert words[0].end_s - words[0].start_s < words[1].end_s - words[1].start_s
    assert spread_words("   ", 0.0, 1.0) == []


def test_spread_over_a_group_skips_separators() -> None:
    group = pack_regions(ramp(20.0), [(1.0, 2.0), (10.0, 11.0)])[0]
    words = spread_over_group("one two three four", group)
    for word in words:
        assert (
            1.0 <= word.start_s <= word.end_s <= 2.0 or 10.0 <= word.start_s <= word.end_s <= 11.0
        )
