"""What each language's model transcribes: the speech as Whisper hears it best.

Speech turns (`app.ml.speech.turns`) are cut from the diarizer's VAD regions (tight: 30 ms
pads, every 0.1 s pause splits a region) and carry one language each. Transcribing those
regions clips words at their edges and feeds Whisper speech chopped at every pause, so the
models transcribe the wider `TRANSCRIPTION_VAD` regions instead, as WhisperX does: longer
context, never clipped at a turn edge. Each wide region goes to the language of the turns
inside it, cut between two turns of different languages; the words then go back to the turns
(and through them, and the diarization, to the segments) by their times.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from app.ml.speech.turns import SpeechTurn
from app.ml.speech.vad import Region

MIN_PIECE_S = 0.05


def language_regions(
    speech: Sequence[Region], turns: Sequence[SpeechTurn]
) -> dict[str | None, list[Region]]:
    """`speech` (the transcription VAD's regions) split by the language of `turns`.

    A region holding turns of one language goes whole to it; one holding turns of several
    is cut at the middle of the pause between two turns of different languages (in time
    order); one holding no turn goes to the language of the nearest turn. With no turns at
    all, nothing is transcribed.
    """
    if not turns:
        return {}
    speech = merged([*speech, *(region for turn in turns for region in turn.regions)])
    spans = sorted(
        ((start, end, turn.language) for turn in turns for start, end in turn.regions),
        key=lambda span: span[0],
    )
    result: dict[str | None, list[Region]] = {}
    for region_start, region_end in speech:
        inside = [span for span in spans if span[1] > region_start and span[0] < region_end]
        if not inside:
            middle = (region_start + region_end) / 2
            nearest = min(spans, key=lambda span: min(abs(span[0] - middle), abs(span[1] - middle)))
            result.setdefault(nearest[2], []).append((region_start, region_end))
            continue
        cursor = region_start
        for before, after in itertools.pairwise(inside):
            if before[2] == after[2]:
                continue
            cut = min(max((before[1] + after[0]) / 2, cursor), region_end)
            if cut - cursor >= MIN_PIECE_S:
                result.setdefault(before[2], []).append((cursor, cut))
            cursor = cut
        if region_end - cursor >= MIN_PIECE_S:
            result.setdefault(inside[-1][2], []).append((cursor, region_end))
    return result


def merged(regions: Sequence[Region]) -> list[Region]:
    """`regions` sorted, overlapping ones joined: every turn's own speech is transcribed
    even where the wider VAD (which holds it on every line measured) did not."""
    joined: list[Region] = []
    for start, end in sorted(regions):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined
