"""Speech-only audio built from VAD regions, and the map back to the original timeline.

Every backend transcribes only what the VAD called speech: the regions are cut out of the
call, packed one after another (a short silence between them, so words of two regions do not
run together) into pieces of at most `max_group_s`, and the recogniser's times are mapped back.
Packing rather than transcribing region by region matters for cost: a long call has hundreds
of short turns, and Whisper pays a full 30 s window for each input however short it is.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.ml.stt.base import SAMPLE_RATE
from app.ml.types import Word

SEPARATOR_S = 0.3
"""Silence put between two packed regions. Long enough for Whisper to end a word there,
short enough that it does not invite a hallucinated phrase."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One region inside a packed buffer."""

    packed_start_s: float
    original_start_s: float
    duration_s: float

    @property
    def packed_end_s(self) -> float:
        return self.packed_start_s + self.duration_s

    @property
    def original_end_s(self) -> float:
        return self.original_start_s + self.duration_s


@dataclass(slots=True)
class PackedGroup:
    """Speech regions packed into one buffer; times inside it map back through `pieces`."""

    audio: np.ndarray
    pieces: list[Piece] = field(default_factory=list)
    _starts: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(piece.duration_s for piece in self.pieces)

    def to_original(self, packed_s: float, *, is_end: bool) -> float:
        """Map a time in the packed buffer to the call's timeline.

        A time that falls in a separator belongs to no region: a word end there is pulled back
        to the end of the region before it, a word start forward to the start of the next one,
        so every mapped time lies inside a speech region.
        """
        if not self._starts:
            self._starts = [piece.packed_start_s for piece in self.pieces]
        index = bisect.bisect_right(self._starts, packed_s) - 1
        if index < 0:
            return self.pieces[0].original_start_s
        piece = self.pieces[index]
        if packed_s <= piece.packed_end_s:
            return piece.original_start_s + (packed_s - piece.packed_start_s)
        if is_end or index + 1 == len(self.pieces):
            return piece.original_end_s
        return self.pieces[index + 1].original_start_s

    def map_word(self, text: str, start_s: float, end_s: float, confidence: float | None) -> Word:
        start = self.to_original(start_s, is_end=False)
        end = max(start, self.to_original(end_s, is_end=True))
        return Word(text, round(float(start), 3), round(float(end), 3), confidence)


def normalise_regions(
    regions: Sequence[tuple[float, float]], duration_s: float, *, min_duration_s: float = 0.05
) -> list[tuple[float, float]]:
    """Regions sorted, clipped to the audio, overlaps merged and slivers dropped."""
    cleaned: list[tuple[float, float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in regions):
        start, end = max(0.0, start), min(duration_s, end)
        if end - start < min_duration_s:
            continue
        if cleaned and start <= cleaned[-1][1]:
            cleaned[-1] = (cleaned[-1][0], max(cleaned[-1][1], end))
        else:
            cleaned.append((start, end))
    return cleaned


def pack_regions(
    audio: np.ndarray,
    regions: Sequence[tuple[float, float]],
    *,
    max_group_s: float = 30.0,
    separator_s: float = SEPARATOR_S,
    split_long: bool = False,
) -> list[PackedGroup]:
    """Pack speech regions into buffers of at most `max_group_s` (a longer region is alone).

    Regions are not split by default, so a word is never cut at a buffer edge: a region
    longer than `max_group_s` becomes its own group and the recogniser windows through it.
    `split_long` cuts such regions into `max_group_s` pieces, for recognisers that take at
    most one window per input (batched Whisper, hosted APIs with a length limit).
    """
    duration_s = len(audio) / SAMPLE_RATE
    cleaned = normalise_regions(regions, duration_s)
    if split_long:
        cleaned = [
            (start, min(end, start + max_group_s))
            for region_start, end in cleaned
            for start in np.arange(region_start, end, max_group_s).tolist()
            if min(end, start + max_group_s) - start >= 0.05
        ]
    separator = np.zeros(round(separator_s * SAMPLE_RATE), dtype=np.float32)
    groups: list[PackedGroup] = []
    for members in group_regions(cleaned, max_group_s, separator_s):
        chunks: list[np.ndarray] = []
        pieces: list[Piece] = []
        cursor_s = 0.0
        for start_s, end_s in members:
            first, last = round(start_s * SAMPLE_RATE), round(end_s * SAMPLE_RATE)
            length_s = (last - first) / SAMPLE_RATE
            if pieces:
                chunks.append(separator)
                cursor_s += len(separator) / SAMPLE_RATE
            chunks.append(audio[first:last])
            pieces.append(Piece(cursor_s, first / SAMPLE_RATE, length_s))
            cursor_s += length_s
        groups.append(PackedGroup(np.concatenate(chunks).astype(np.float32), pieces))
    return groups


def group_regions(
    regions: Sequence[tuple[float, float]], max_group_s: float, separator_s: float
) -> list[list[tuple[float, float]]]:
    """Sorted, disjoint `regions` in consecutive groups of at most `max_group_s` packed.

    A group that is full ends at the longest pause among its later half's regions, not
    simply before the region that did not fit: a short pause inside a sentence ("she
    called his name many times, | when you hear the bell, come quickly") left at a group's
    edge gave Whisper half a sentence, which it completed by guessing, and the next group
    began with the rest out of context.
    """
    groups: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []

    def packed_s(members: Sequence[tuple[float, float]]) -> float:
        return sum(end - start for start, end in members) + separator_s * max(0, len(members) - 1)

    for region in regions:
        if current and packed_s([*current, region]) > max_group_s:
            candidates = [len(current)]
            offset = 0.0
            for index, (start, end) in enumerate(current):
                if index and offset >= max_group_s / 2:
                    candidates.append(index)
                offset += end - start + separator_s
            extended = [*current, region]
            cut = max(
                (
                    index
                    for index in candidates
                    if packed_s(extended[index:]) <= max_group_s or index == len(current)
                ),
                key=lambda index: (extended[index][0] - extended[index - 1][1], index),
            )
            groups.append(current[:cut])
            current = current[cut:]
        current.append(region)
    if current:
        groups.append(current)
    return groups


def sample_windows(
    groups: Sequence[PackedGroup], *, count: int, window_s: float = 30.0
) -> list[PackedGroup]:
    """Up to `count` groups spread evenly over the call (first and last included).

    Used for language identification: voting over windows from the whole call means a
    non-speech or off-language opening (music on hold, an IVR prompt) cannot decide alone.
    """
    usable = [group for group in groups if group.duration_s <= window_s + 1e-6] or list(groups)
    if len(usable) <= count:
        return usable
    positions = np.linspace(0, len(usable) - 1, num=count)
    return [usable[i] for i in sorted({round(float(p)) for p in positions})]


_WORD_CHARS = re.compile(r"[\w']+", re.UNICODE)


def _key(text: str) -> str:
    return "".join(_WORD_CHARS.findall(text.lower()))


def drop_repetition_loops(
    words: list[Word], *, max_ngram: int = 4, max_repeats: int = 3
) -> list[Word]:
    """Collapse a run of one n-gram repeated more than `max_repeats` times to one copy.

    Whisper's classic failure is a decoding loop ("thank you. thank you. thank you. ...").
    The model's own thresholds catch most loops; this catches the ones that slip through.
    Natural speech seldom repeats a phrase four times in a row; when it does ("no no no no")
    one copy survives, which costs little.
    """
    keys = [_key(word.text) for word in words]
    kept: list[Word] = []
    i = 0
    while i < len(words):
        collapsed = False
        for n in range(1, max_ngram + 1):
            gram = keys[i : i + n]
            if len(gram) < n or not all(gram):
                break
            repeats = 1
            while keys[i + repeats * n : i + (repeats + 1) * n] == gram:
                repeats += 1
            if repeats > max_repeats:
                kept.extend(words[i : i + n])
                i += repeats * n
                collapsed = True
                break
        if not collapsed:
            kept.append(words[i])
            i += 1
    return kept


def spread_words(
    text: str, start_s: float, end_s: float, *, confidence: float | None = None
) -> list[Word]:
    """Words of `text` laid over [start_s, end_s] in proportion to their length in characters.

    For recognisers that return text without word times (Seamless M4T, AISHA, gpt-4o
    transcription): the times are estimates, exact only at the span's two ends.
    """
    tokens = text.split()
    if not tokens or end_s <= start_s:
        return []
    weights = np.array([len(token) + 1 for token in tokens], dtype=np.float64)
    edges = (
        start_s + (end_s - start_s) * np.concatenate(([0.0], np.cumsum(weights))) / weights.sum()
    )
    return [
        Word(token, round(float(edges[i]), 3), round(float(edges[i + 1]), 3), confidence)
        for i, token in enumerate(tokens)
    ]


def spread_over_group(
    text: str, group: PackedGroup, *, confidence: float | None = None
) -> list[Word]:
    """`spread_words` over the speech of a packed group; separators take no words, and a word
    belongs wholly to the region holding its middle, so none straddles a gap."""
    offsets = np.cumsum([0.0] + [piece.duration_s for piece in group.pieces])
    mapped: list[Word] = []
    for word in spread_words(text, 0.0, group.speech_s, confidence=confidence):
        middle = (word.start_s + word.end_s) / 2
        index = int(np.searchsorted(offsets, middle, side="right")) - 1
        index = min(max(index, 0), len(group.pieces) - 1)
        piece = group.pieces[index]

        def to_original(speech_s: float, piece: Piece = piece, index: int = index) -> float:
            inside = min(piece.duration_s, max(0.0, speech_s - float(offsets[index])))
            return round(piece.original_start_s + inside, 3)

        mapped.append(
            Word(word.text, to_original(word.start_s), to_original(word.end_s), word.confidence)
        )
    return mapped


def sorted_words(words: Iterable[Word]) -> list[Word]:
    return sorted(words, key=lambda word: (word.start_s, word.end_s))
