"""Words + speaker turns -> transcript segments, one speaker per segment.

Each word goes to the speaker whose turns overlap it most (the nearest turn when none
overlaps, e.g. a word the STT timed into a VAD gap); segments are then rebuilt wherever
the speaker changes, so a segment never mixes two speakers even when the diarizer's turn
boundaries fall mid-sentence.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from app.ml.diarization.base import SpeakerTurn
from app.ml.types import TranscriptSegment, Word

MAX_PAUSE_S = 2.0
"""A pause this long inside one speaker's speech starts a new segment."""


def assign_speakers(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> list[str | None]:
    """The speaker of each word (None only when there are no turns at all)."""
    if not turns:
        return [None] * len(words)
    ordered = sorted(turns, key=lambda t: t.start_s)
    starts = [t.start_s for t in ordered]
    # Turns are short relative to a call, so scanning back a bounded window of earlier
    # turns from the bisect point finds every overlap; the running max end keeps it exact.
    max_end: list[float] = []
    running = float("-inf")
    for turn in ordered:
        running = max(running, turn.end_s)
        max_end.append(running)
    speakers: list[str | None] = []
    for word in words:
        hi = bisect.bisect_right(starts, word.end_s)
        overlap: dict[str, float] = {}
        i = hi - 1
        while i >= 0 and max_end[i] > word.start_s:
            turn = ordered[i]
            shared = min(turn.end_s, word.end_s) - max(turn.start_s, word.start_s)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
            i -= 1
        if overlap:
            speakers.append(max(overlap.items(), key=lambda item: item[1])[0])
            continue
        speakers.append(_nearest(ordered, starts, word).speaker)
    return speakers


def _nearest(ordered: list[SpeakerTurn], starts: list[float], word: Word) -> SpeakerTurn:
    middle = (word.start_s + word.end_s) / 2
    index = bisect.bisect_right(starts, middle)
    candidates = ordered[max(0, index - 8) : index + 1]
    return min(
        candidates,
        key=lambda t: (
            0.0
            if t.start_s <= middle <= t.end_s
            else min(abs(t.start_s - middle), abs(t.end_s - middle))
        ),
    )


def build_segments(
    words: Sequence[Word],
    speakers: Sequence[str | None],
    *,
    channel: int | None = None,
    speaker_channels: dict[str, int] | None = None,
    default_speaker: str = "SPEAKER_00",
    max_pause_s: float = MAX_PAUSE_S,
) -> list[TranscriptSegment]:
    segments: list[TranscriptSegment] = []
    current: list[Word] = []
    current_speaker: str | None = None

    def flush() -> None:
        if not current or current_speaker is None:
            return
        segment_channel = channel
        if segment_channel is None and speaker_channels:
            segment_channel = speaker_channels.get(current_speaker)
        segments.append(
            TranscriptSegment(
                speaker=current_speaker,
                start_s=current[0].start_s,
                end_s=max(word.end_s for word in current),
                text=join_words(current),
                words=list(current),
                channel=segment_channel,
            )
        )

    for word, speaker in zip(words, speakers, strict=True):
        speaker = speaker or default_speaker
        if current and (
            speaker != current_speaker or word.start_s - current[-1].end_s > max_pause_s
        ):
            flush()
            current = []
        current_speaker = speaker
        current.append(word)
    flush()
    return segments


def merge_words_and_turns(
    words: Sequence[Word], turns: Sequence[SpeakerTurn]
) -> list[TranscriptSegment]:
    ordered = sorted(words, key=lambda w: (w.start_s, w.end_s))
    return build_segments(ordered, assign_speakers(ordered, turns))


def join_words(words: Sequence[Word]) -> str:
    return " ".join(word.text.strip() for word in words if word.text.strip())
