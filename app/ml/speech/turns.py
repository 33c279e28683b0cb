"""Speech turns: the unit a language is identified for and a model is chosen for.

A turn is one speaker's stretch of speech: the VAD speech regions inside that speaker's
diarization turns (mono) or on that speaker's channel (stereo), with pauses up to
`JOIN_GAP_S` kept inside and at most `MAX_TURN_S` long. Calls switch language between
turns, seldom inside one, so each turn gets one language.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.ml.diarization.base import SpeakerTurn
from app.ml.speech.vad import Region
from app.ml.types import Word

JOIN_GAP_S = 1.0
"""A pause up to this long inside one speaker's speech stays inside the turn."""
MAX_TURN_S = 30.0
"""Longer stretches are cut: one language decision per at most this much audio."""


@dataclass(slots=True)
class SpeechTurn:
    speaker: str
    regions: list[Region]
    """Speech regions (seconds, sorted, disjoint) making up the turn."""
    channel: int | None = None
    language: str | None = None
    words: list[Word] = field(default_factory=list)

    @property
    def start_s(self) -> float:
        return self.regions[0][0]

    @property
    def end_s(self) -> float:
        return self.regions[-1][1]

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.regions)


def _intersect(regions: Sequence[Region], start_s: float, end_s: float) -> list[Region]:
    pieces: list[Region] = []
    for region_start, region_end in regions:
        if region_end <= start_s:
            continue
        if region_start >= end_s:
            break
        begin, finish = max(region_start, start_s), min(region_end, end_s)
        if finish - begin >= 0.05:
            pieces.append((begin, finish))
    return pieces


def _group(speaker: str, regions: list[Region], channel: int | None) -> list[SpeechTurn]:
    """Consecutive regions of one speaker joined into turns (gap and length bounded)."""
    turns: list[SpeechTurn] = []
    for region in sorted(regions):
        if turns:
            last = turns[-1]
            if region[0] - last.end_s <= JOIN_GAP_S and region[1] - last.start_s <= MAX_TURN_S:
                if region[0] < last.end_s:  # overlapping diarization turns of one speaker
                    last.regions[-1] = (last.regions[-1][0], max(last.end_s, region[1]))
                else:
                    last.regions.append(region)
                continue
        turns.append(SpeechTurn(speaker, [region], channel))
    return turns


def mono_turns(regions: Sequence[Region], diarization: Sequence[SpeakerTurn]) -> list[SpeechTurn]:
    """Turns of a mono call: each diarization turn cut down to the speech inside it.

    Speech the diarizer gave to nobody (a diarizer other than the local one may leave gaps)
    goes to the speaker of the nearest turn, so no speech is dropped.
    """
    ordered = sorted(regions)
    if not diarization:
        return _group("SPEAKER_00", list(ordered), None)
    by_speaker: dict[str, list[Region]] = {}
    covered: list[Region] = []
    for turn in diarization:
        pieces = _intersect(ordered, turn.start_s, turn.end_s)
        by_speaker.setdefault(turn.speaker, []).extend(pieces)
        covered.extend(pieces)
    for start, end in _uncovered(ordered, covered):
        middle = (start + end) / 2
        nearest = min(
            diarization,
            key=lambda t: (
                0.0
                if t.start_s <= middle <= t.end_s
                else min(abs(t.start_s - middle), abs(t.end_s - middle))
            ),
        )
        by_speaker.setdefault(nearest.speaker, []).append((start, end))
    turns = [
        turn for speaker, pieces in by_speaker.items() for turn in _group(speaker, pieces, None)
    ]
    return sorted(turns, key=lambda t: (t.start_s, t.end_s))


def _uncovered(regions: Sequence[Region], covered: Sequence[Region]) -> list[Region]:
    """Parts of `regions` outside every `covered` interval (both sorted by start)."""
    spans = sorted(covered)
    gaps: list[Region] = []
    for start, end in regions:
        cursor = start
        for covered_start, covered_end in spans:
            if covered_end <= cursor or covered_start >= end:
                continue
            if covered_start - cursor >= 0.2:
                gaps.append((cursor, covered_start))
            cursor = max(cursor, covered_end)
        if end - cursor >= 0.2:
            gaps.append((cursor, end))
    return gaps


def channel_turns(speaker: str, channel: int, regions: Sequence[Region]) -> list[SpeechTurn]:
    return _group(speaker, list(regions), channel)


def assign_words(turns: Sequence[SpeechTurn], words: Sequence[Word]) -> None:
    """Give each word to the turn (among `turns`) holding most of it, else the nearest."""
    if not turns:
        return
    ordered = sorted(turns, key=lambda t: t.start_s)
    starts = [turn.start_s for turn in ordered]
    for word in words:
        middle = (word.start_s + word.end_s) / 2
        index = bisect.bisect_right(starts, middle)
        candidates = ordered[max(0, index - 4) : index + 2]

        def distance(turn: SpeechTurn, middle: float = middle) -> float:
            best = float("inf")
            for start, end in turn.regions:
                if start <= middle <= end:
                    return 0.0
                best = min(best, abs(start - middle), abs(end - middle))
            return best

        min(candidates, key=distance).words.append(word)
