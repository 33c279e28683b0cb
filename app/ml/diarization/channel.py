"""Stereo call recordings: one party per channel, so the channel *is* the speaker.

VAD runs on each channel separately; turns of different channels may overlap and are kept
as they are (crosstalk is real information in a call, not an error to resolve).
"""

from __future__ import annotations

from app.ml.diarization.base import (
    Diarization,
    SpeakerTurn,
    speaker_label,
)
from app.ml.speech.audio import DecodedAudio
from app.ml.speech.vad import Region, SileroVad
from app.ml.types import ProgressCallback, SpeakerHints, no_progress, part_of


class ChannelDiarizer:
    def __init__(self, vad: SileroVad) -> None:
        self.vad = vad

    @staticmethod
    def honours(audio: DecodedAudio, hints: SpeakerHints) -> bool:
        """Whether one speaker per channel satisfies `hints` (else diarize the mix)."""
        channels = audio.channels
        if hints.num_speakers is not None:
            return hints.num_speakers == channels
        if hints.min_speakers is not None and hints.min_speakers > channels:
            return False
        return not (hints.max_speakers is not None and hints.max_speakers < channels)

    def regions(
        self, audio: DecodedAudio, progress: ProgressCallback = no_progress
    ) -> list[list[Region]]:
        """Speech regions of each channel; each channel fills an equal share of the stage."""
        share = 1.0 / audio.channels
        return [
            self.vad(
                audio.samples[channel],
                part_of(progress, channel * share, (channel + 1) * share),
            )
            for channel in range(audio.channels)
        ]

    def __call__(
        self,
        audio: DecodedAudio,
        *,
        hints: SpeakerHints,
        progress: ProgressCallback = no_progress,
        regions: list[list[Region]] | None = None,
    ) -> Diarization:
        per_channel = regions if regions is not None else self.regions(audio, progress)
        turns = [
            SpeakerTurn(speaker_label(channel), start, end, channel)
            for channel, channel_regions in enumerate(per_channel)
            for start, end in channel_regions
        ]
        turns.sort(key=lambda turn: (turn.start_s, turn.end_s))
        return Diarization(
            turns=turns,
            speaker_channels={speaker_label(c): c for c in range(audio.channels)},
        )
