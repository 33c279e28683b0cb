"""Reading the CLI's transcript JSON: {"segments": [{"speaker", "start", "end", "text",
"channel"}]} (words optional, as in the contract's Word)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.ml.analysis.errors import AnalysisError
from app.ml.types import Transcript, TranscriptSegment, Word


class _WordIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str
    start: float
    end: float
    confidence: float | None = None


class _SegmentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    speaker: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    channel: int | None = None
    words: list[_WordIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> _SegmentIn:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class _TranscriptIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    segments: list[_SegmentIn]
    duration: float | None = Field(default=None, ge=0)


def transcript_from_json(data: Any) -> Transcript:
    """A Transcript from parsed JSON; AnalysisError with the validation problem otherwise."""
    try:
        parsed = _TranscriptIn.model_validate(data)
    except ValidationError as error:
        raise AnalysisError(f"invalid transcript: {error}") from error
    segments = [
        TranscriptSegment(
            speaker=s.speaker,
            start_s=s.start,
            end_s=s.end,
            text=s.text,
            channel=s.channel,
            words=[Word(w.text, w.start, w.end, w.confidence) for w in s.words],
        )
        for s in parsed.segments
    ]
    duration = parsed.duration or max((s.end_s for s in segments), default=0.0)
    channels = {s.channel for s in segments if s.channel is not None}
    speaker_channels = {s.speaker: s.channel for s in segments if s.channel is not None}
    return Transcript(
        segments=segments,
        duration_s=duration,
        channels=max(1, len(channels)),
        speaker_channels=speaker_channels,
    )
