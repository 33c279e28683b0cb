"""A call's recording redacted: the spans where personal data is said (from the words) or
keyed (keypad tones, from the audio), and the copy with those spans masked.

What cannot be checked is said, never assumed clean: speech that no model transcribed has
no words to search, so the call gets a `NOT_REDACTED` warning naming how much of its talk
time that is (its keypad tones are still masked; they need no transcript).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.ml.redaction.audio import Fill, find_key_tones, write_redacted_copy
from app.ml.redaction.spoken import spoken_spans
from app.ml.types import CallWarning, Transcript, TranscriptSegment

DTMF = "DTMF"
NOT_REDACTED = "NOT_REDACTED"
DEFAULT_MARGIN_S = 0.1
"""Added before and after a spoken span: word times from the recogniser are estimates."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """One masked span. Never says what was masked (a keypad tone's key would be the digit)."""

    type: str
    start_s: float
    end_s: float


@dataclass(slots=True)
class RedactedRecording:
    redactions: list[Redaction]
    warnings: list[CallWarning] = field(default_factory=list)
    detect_s: float = 0.0
    """Seconds spent finding keypad tones and spoken spans."""
    write_s: float = 0.0
    """Seconds spent writing the copy."""


def not_redacted_warning(segments: Sequence[TranscriptSegment]) -> CallWarning | None:
    """The warning for speech nobody could search for spoken numbers, or None."""
    talk = sum(max(0.0, s.end_s - s.start_s) for s in segments)
    unchecked = sum(max(0.0, s.end_s - s.start_s) for s in segments if not s.text.strip())
    if unchecked <= 0.0:
        return None
    share = unchecked / talk if talk > 0 else 1.0
    return CallWarning(
        NOT_REDACTED,
        f"Spoken card and phone numbers could not be looked for in {share:.0%} of the talk "
        "time (speech that was not transcribed), so they may still be heard in the recording; "
        "keypad tones were masked everywhere",
    )


def plan_redactions(
    source: Path, transcript: Transcript, *, margin_s: float = DEFAULT_MARGIN_S
) -> tuple[list[Redaction], list[CallWarning]]:
    """What to mask in `source`, in time order, and what could not be checked."""
    spoken = spoken_spans(transcript.segments, margin_s=margin_s, duration_s=None)
    redactions = [Redaction(s.type, s.start_s, s.end_s) for s in spoken]
    redactions += [
        Redaction(DTMF, round(t.start_s, 3), round(t.end_s, 3)) for t in find_key_tones(source)
    ]
    redactions.sort(key=lambda r: (r.start_s, r.end_s))
    warning = not_redacted_warning(transcript.segments)
    return redactions, [warning] if warning is not None else []


def redact_recording(
    source: Path,
    destination: Path,
    transcript: Transcript,
    *,
    fill: Fill = Fill.TONE,
    margin_s: float = DEFAULT_MARGIN_S,
) -> RedactedRecording:
    """Blocking: finds the spans and writes the redacted copy of `source` to `destination`."""
    started = time.perf_counter()
    redactions, warnings = plan_redactions(source, transcript, margin_s=margin_s)
    planned = time.perf_counter()
    write_redacted_copy(source, destination, [(r.start_s, r.end_s) for r in redactions], fill=fill)
    return RedactedRecording(
        redactions, warnings, detect_s=planned - started, write_s=time.perf_counter() - planned
    )
