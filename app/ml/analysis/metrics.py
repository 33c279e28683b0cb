"""Call metrics from timed segments: talk, silence, overlap, interruptions, per-speaker stats."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from app.core.enums import SpeakerRole
from app.ml.analysis import text as tx
from app.ml.types import CallMetrics, SpeakerStats, TranscriptSegment

Interval = tuple[float, float]


def _union(intervals: Sequence[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(intervals: Sequence[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def _overlap(per_speaker: Mapping[str, list[Interval]]) -> float:
    """Time during which at least two speakers talk at once."""
    events: list[tuple[float, int]] = []
    for intervals in per_speaker.values():
        for start, end in intervals:
            events += [(start, 1), (end, -1)]
    events.sort(key=lambda event: (event[0], event[1]))  # ends before starts at the same instant
    total = 0.0
    active = 0
    previous = 0.0
    for time, delta in events:
        if active >= 2:
            total += time - previous
        active += delta
        previous = time
    return total


def _word_count(segment: TranscriptSegment) -> int:
    return len(segment.words) if segment.words else tx.word_count(segment.text)


def interruptions(segments: Sequence[TranscriptSegment], threshold_s: float) -> int:
    """Turns that start while another speaker is still talking and overlap them by more than
    `threshold_s` (a backchannel "mm-hm" or a clipped turn end is not an interruption)."""
    ordered = sorted(segments, key=lambda segment: segment.start_s)
    count = 0
    for i, segment in enumerate(ordered):
        for other in ordered[max(0, i - 20) : i]:  # turns far back ended long ago
            if (
                other.speaker == segment.speaker
                or not other.start_s < segment.start_s < other.end_s
            ):
                continue
            if min(other.end_s, segment.end_s) - segment.start_s > threshold_s:
                count += 1
                break
    return count


def compute_metrics(
    segments: Sequence[TranscriptSegment],
    duration_s: float,
    roles: Mapping[str, SpeakerRole],
    *,
    interruption_threshold_s: float,
) -> CallMetrics:
    per_speaker: dict[str, list[Interval]] = defaultdict(list)
    for segment in segments:
        per_speaker[segment.speaker].append((segment.start_s, segment.end_s))
    merged = {speaker: _union(intervals) for speaker, intervals in per_speaker.items()}
    everyone = _union([interval for intervals in merged.values() for interval in intervals])
    talk_s = _length(everyone)
    duration_s = max(duration_s, everyone[-1][1] if everyone else 0.0)

    ordered = sorted(segments, key=lambda segment: (segment.start_s, segment.end_s))
    turns: dict[str, int] = defaultdict(int)
    longest: dict[str, float] = defaultdict(float)
    run_speaker: str | None = None
    run_start = run_end = 0.0
    for segment in ordered:
        if segment.speaker != run_speaker:
            turns[segment.speaker] += 1
            run_speaker, run_start = segment.speaker, segment.start_s
            run_end = segment.end_s
        else:
            run_end = max(run_end, segment.end_s)
        longest[segment.speaker] = max(longest[segment.speaker], run_end - run_start)

    speaker_talk = {speaker: _length(intervals) for speaker, intervals in merged.items()}
    total_speaker_talk = sum(speaker_talk.values())
    words: dict[str, int] = defaultdict(int)
    for segment in segments:
        words[segment.speaker] += _word_count(segment)
    speakers = [
        SpeakerStats(
            speaker=speaker,
            role=roles.get(speaker, SpeakerRole.UNKNOWN),
            talk_s=round(speaker_talk[speaker], 3),
            talk_ratio=round(speaker_talk[speaker] / total_speaker_talk, 4)
            if total_speaker_talk
            else 0.0,
            words_per_minute=round(words[speaker] / (speaker_talk[speaker] / 60.0), 1)
            if speaker_talk[speaker] > 0
            else None,
            turns=turns[speaker],
            longest_monologue_s=round(longest[speaker], 3),
        )
        for speaker in per_speaker
    ]
    return CallMetrics(
        duration_s=round(duration_s, 3),
        talk_s=round(talk_s, 3),
        silence_s=round(max(0.0, duration_s - talk_s), 3),
        overlap_s=round(_overlap(merged), 3),
        interruptions=interruptions(segments, interruption_threshold_s),
        speakers=speakers,
    )
