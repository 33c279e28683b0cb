"""Transcript segments that keep the diarization: who spoke when comes from the speaker
turns, what was said from the words.

Each word goes to the speaker talking when it was said (WhisperX's word-speaker
assignment: the speaker whose turns overlap the word most, the nearest turn when none
does), then to that speaker's turn it overlaps most. Every speaker turn becomes one or more
segments spanning the turn's own times, so:

- a stretch the speech-to-text read as one turn is split where the diarization says the
  speaker changes, and a speaker turn is split where its speaker changes language;
- overlapped speech gives overlapping segments of both speakers (the words go to the one
  who holds them most; the other's segment may have no words);
- speech with no words (a language no model transcribes, a mumble) stays a segment with
  its speaker, times and language;
- the segments cover exactly the time the diarization gives each speaker, so their DER is
  the diarizer's (a turn is only ever cut inside itself, at the middle of a long pause
  between its words, so coverage never changes).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from app.ml.diarization.base import SpeakerTurn
from app.ml.speech.merge import MAX_PAUSE_S, assign_speakers, join_words
from app.ml.types import TranscriptSegment, Word

WORD_SLACK_S = 0.2
"""How far a segment may reach beyond its speaker turn to take in its words' times."""


@dataclass(frozen=True, slots=True)
class LanguageSpan:
    """A stretch of one speaker's speech identified as one language (a pipeline turn)."""

    speaker: str
    start_s: float
    end_s: float
    language: str | None


def segments_from_turns(
    turns: Sequence[SpeakerTurn],
    words: Sequence[Word],
    *,
    languages: Sequence[LanguageSpan] = (),
    max_pause_s: float = MAX_PAUSE_S,
) -> list[TranscriptSegment]:
    """Segments in time order: one per speaker turn, cut at pauses of more than
    `max_pause_s` between its words. A segment's language is that of the same speaker's
    `languages` span overlapping it most (turns are cut where that language changes)."""
    ordered_turns = sorted(
        split_at_language_changes(turns, languages), key=lambda t: (t.start_s, t.end_s)
    )
    if not ordered_turns:
        return []
    order = sorted(range(len(words)), key=lambda i: (words[i].start_s, words[i].end_s))
    ordered_words = [words[i] for i in order]
    speakers = assign_speakers(ordered_words, ordered_turns)
    per_turn: list[list[int]] = [[] for _ in ordered_turns]
    by_speaker: dict[str, list[int]] = {}
    for index, turn in enumerate(ordered_turns):
        by_speaker.setdefault(turn.speaker, []).append(index)
    for word_index, (word, speaker) in enumerate(zip(ordered_words, speakers, strict=True)):
        candidates = by_speaker.get(speaker or "", [])
        if candidates:
            per_turn[_best_turn(ordered_turns, candidates, word)].append(word_index)
    segments: list[TranscriptSegment] = []
    for turn, word_indices in zip(ordered_turns, per_turn, strict=True):
        for start_s, end_s, piece in _cut_at_pauses(turn, ordered_words, word_indices, max_pause_s):
            piece_words = [ordered_words[i] for i in piece]
            segments.append(
                TranscriptSegment(
                    speaker=turn.speaker,
                    start_s=round(start_s, 3),
                    end_s=round(end_s, 3),
                    text=join_words(piece_words),
                    words=piece_words,
                    channel=turn.channel,
                    language=_span_language(languages, turn.speaker, start_s, end_s),
                )
            )
    segments.sort(key=lambda s: (s.start_s, s.end_s))
    return segments


def split_at_language_changes(
    turns: Sequence[SpeakerTurn], languages: Sequence[LanguageSpan]
) -> list[SpeakerTurn]:
    """`turns`, each cut where its speaker goes from one language span to the next in
    another language (at the middle of the pause between them), so a segment has one
    language; the pieces cover exactly what the turn did."""
    per_speaker: dict[str, list[LanguageSpan]] = {}
    for span in sorted(languages, key=lambda span: span.start_s):
        per_speaker.setdefault(span.speaker, []).append(span)
    result: list[SpeakerTurn] = []
    for turn in turns:
        spans = per_speaker.get(turn.speaker, [])
        cuts = [
            (before.end_s + after.start_s) / 2
            for before, after in itertools.pairwise(spans)
            if before.language != after.language
            and turn.start_s < (before.end_s + after.start_s) / 2 < turn.end_s
        ]
        bounds = [turn.start_s, *sorted(cuts), turn.end_s]
        result.extend(
            SpeakerTurn(turn.speaker, start, end, turn.channel)
            for start, end in itertools.pairwise(bounds)
        )
    return result


def _best_turn(turns: Sequence[SpeakerTurn], candidates: Sequence[int], word: Word) -> int:
    """The candidate turn overlapping `word` most, else the one nearest its middle."""
    middle = (word.start_s + word.end_s) / 2

    def score(index: int) -> tuple[float, float]:
        turn = turns[index]
        shared = min(turn.end_s, word.end_s) - max(turn.start_s, word.start_s)
        distance = (
            0.0
            if turn.start_s <= middle <= turn.end_s
            else min(abs(turn.start_s - middle), abs(turn.end_s - middle))
        )
        return (-max(shared, 0.0), distance)

    starts = [turns[i].start_s for i in candidates]
    at = bisect.bisect_right(starts, word.end_s)
    # A speaker's own turns do not overlap one another much: the few around the word decide.
    nearby = candidates[max(0, at - 3) : at + 2] or candidates
    return min(nearby, key=score)


def _cut_at_pauses(
    turn: SpeakerTurn, words: Sequence[Word], indices: Sequence[int], max_pause_s: float
) -> list[tuple[float, float, list[int]]]:
    """(start, end, word indices) pieces of `turn`, cut at the middle of every pause longer
    than `max_pause_s` between its words; the first starts at the turn's start (or its
    first word, if earlier, by up to WORD_SLACK_S), the last ends at the turn's end (or its
    last word, if later, likewise)."""
    start = turn.start_s
    end = turn.end_s
    if indices:
        # Words timed a little outside their turn widen it, a little: the speech-to-text's
        # word times are less exact than the diarizer's turns, and a word it stretched over
        # a pause must not give its speaker that pause.
        start = min(start, max(words[indices[0]].start_s, start - WORD_SLACK_S))
        end = max(end, min(max(words[i].end_s for i in indices), end + WORD_SLACK_S))
    pieces: list[tuple[float, float, list[int]]] = []
    current: list[int] = []
    piece_start = start
    for index in indices:
        if current:
            previous_end = max(words[i].end_s for i in current)
            if words[index].start_s - previous_end > max_pause_s:
                cut = (previous_end + words[index].start_s) / 2
                pieces.append((piece_start, cut, current))
                current, piece_start = [], cut
        current.append(index)
    pieces.append((piece_start, end, current))
    return pieces


def _span_language(
    spans: Sequence[LanguageSpan], speaker: str, start_s: float, end_s: float
) -> str | None:
    """The language of the speaker's span overlapping [start_s, end_s] most, else of the
    nearest of the speaker's spans."""
    best: tuple[float, str | None] | None = None
    for span in spans:
        if span.speaker != speaker:
            continue
        shared = min(span.end_s, end_s) - max(span.start_s, start_s)
        distance = max(span.start_s - end_s, start_s - span.end_s, 0.0)
        key = shared if shared > 0 else -distance
        if best is None or key > best[0]:
            best = (key, span.language)
    return best[1] if best else None
