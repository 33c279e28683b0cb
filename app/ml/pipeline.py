"""The speech pipeline: decode -> diarize -> transcribe -> merge, as named stages.

    pipeline = SpeechPipeline(PipelineSettings())          # once per worker process
    transcript = pipeline(path, hints=SpeakerHints(num_speakers=2), hook=progress)

Stereo recordings whose channels differ are diarized by channel (speaker = channel) and
each channel is transcribed on its own; mono (and dual-mono) recordings go through the
configured mono diarizer, and words are assigned to its turns. Synchronous: the worker
runs it in a thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.ml.audio import DecodedAudio, decode_audio
from app.ml.compute import MODELS, configure_threads, out_of_memory_as_error, resolve_device
from app.ml.diarization import Diarizer, build_mono_diarizer
from app.ml.diarization.channel import ChannelDiarizer
from app.ml.merge import assign_speakers, build_segments
from app.ml.settings import PipelineSettings
from app.ml.stt import SpeechToText, build_speech_to_text
from app.ml.types import (
    ProgressCallback,
    SpeakerHints,
    SpeakerRole,
    Stage,
    Transcript,
    TranscriptSegment,
    Word,
    no_progress,
    part_of,
)
from app.ml.vad import Region, SileroVad, total_speech_s

TRANSCRIBE_CHUNK_SPEECH_S = 300.0
"""Speech seconds per STT call: bounds STT memory and gives the hook a step on long calls."""


class SpeechPipeline:
    """Built once per process from settings; every model comes from the process cache."""

    def __init__(
        self, settings: PipelineSettings | None = None, *, stt: SpeechToText | None = None
    ) -> None:
        self.settings = settings or PipelineSettings()
        s = self.settings
        self.device = resolve_device(s.device)
        self.threads = configure_threads(s.cpu_threads)
        self.vad = MODELS.get(("silero-vad",), SileroVad)
        self.channel_diarizer = ChannelDiarizer(self.vad)
        self.mono_diarizer: Diarizer = build_mono_diarizer(s, self.device, self.vad)
        if stt is None:
            key = (
                "stt",
                s.stt_backend,
                s.stt_model,
                s.stt_compute_type,
                s.stt_batch_size,
                s.cpu_threads,
                self.device,
            )
            with out_of_memory_as_error(self.device, "loading the speech-to-text model"):
                stt = MODELS.get(key, lambda: build_speech_to_text(s, self.device))
        self.stt = stt
        # Importing silero_vad pins torch to one thread; restore the configured count.
        configure_threads(s.cpu_threads)

    def resolve_hints(self, hints: SpeakerHints | None) -> SpeakerHints:
        """A call's own hints replace the settings' defaults as a whole (mixing a per-call
        `num_speakers` with a default `MAX_SPEAKERS` could contradict it)."""
        if hints is not None and any(
            value is not None
            for value in (hints.num_speakers, hints.min_speakers, hints.max_speakers)
        ):
            return hints
        return self.settings.speaker_hints

    def __call__(
        self,
        audio_path: Path,
        *,
        hints: SpeakerHints | None = None,
        hook: ProgressCallback = no_progress,
    ) -> Transcript:
        hints = self.resolve_hints(hints).validated()
        hook(Stage.DECODING, 0, 1)
        audio = decode_audio(Path(audio_path))
        hook(Stage.DECODING, 1, 1)
        if self._by_channel(audio, hints):
            return self._stereo(audio, hints, hook)
        return self._mono(audio, hints, hook)

    def _by_channel(self, audio: DecodedAudio, hints: SpeakerHints) -> bool:
        backend = self.settings.diarization_backend
        return (
            audio.channels > 1
            and backend in {"auto", "channel"}
            and ChannelDiarizer.honours(audio, hints)
        )

    # --- stereo: one party per channel ----------------------------------------------------

    def _stereo(
        self, audio: DecodedAudio, hints: SpeakerHints, hook: ProgressCallback
    ) -> Transcript:
        regions = self.channel_diarizer.regions(audio, hook)
        diarization = self.channel_diarizer(audio, hints=hints, regions=regions)
        hook(Stage.DIARIZING, 1, 1)

        language = self._language([(audio.samples[c], regions[c]) for c in range(audio.channels)])
        total_speech = sum(total_speech_s(r) for r in regions) or 1.0
        done = 0.0
        hook(Stage.TRANSCRIBING, 0, total_speech)
        segments: list[TranscriptSegment] = []
        for channel in range(audio.channels):
            words, done = self._transcribe(
                audio.samples[channel], regions[channel], language, hook, done, total_speech
            )
            speaker = next(s for s, c in diarization.speaker_channels.items() if c == channel)
            segments.extend(build_segments(words, [speaker] * len(words), channel=channel))
        hook(Stage.TRANSCRIBING, total_speech, total_speech)
        segments.sort(key=lambda seg: (seg.start_s, seg.end_s))
        agent = self.settings.agent_channel
        for segment in segments:
            if agent < audio.channels:
                segment.role = (
                    SpeakerRole.AGENT if segment.channel == agent else SpeakerRole.CUSTOMER
                )
            segment.language = language
        return Transcript(
            segments=segments,
            duration_s=audio.duration_s,
            language=language,
            channels=audio.channels,
            speaker_channels=dict(diarization.speaker_channels),
        )

    # --- mono (and dual-mono, and stereo whose hints channels cannot meet) ---------------

    def _mono(self, audio: DecodedAudio, hints: SpeakerHints, hook: ProgressCallback) -> Transcript:
        signal = audio.mono()
        duration = audio.duration_s
        # The VAD fills the first half of DIARIZING, the diarizer the second.
        regions = self.vad(signal, part_of(hook, 0.0, 0.5))
        mono = (
            audio
            if audio.channels == 1
            else DecodedAudio(
                signal[None, :], audio.source_channels, audio.source_sample_rate, audio.dual_mono
            )
        )
        with out_of_memory_as_error(self.device, "diarizing"):
            diarization = self.mono_diarizer(
                mono,
                hints=hints,
                progress=part_of(hook, 0.5, 1.0),
                regions=regions if self.mono_diarizer.takes_speech_regions else None,
            )
        hook(Stage.DIARIZING, 1, 1)

        language = self._language([(signal, regions)])
        total_speech = total_speech_s(regions) or 1.0
        hook(Stage.TRANSCRIBING, 0, total_speech)
        words, _ = self._transcribe(signal, regions, language, hook, 0.0, total_speech)
        hook(Stage.TRANSCRIBING, total_speech, total_speech)
        segments = build_segments(words, assign_speakers(words, diarization.turns))
        for segment in segments:
            segment.language = language
        return Transcript(segments=segments, duration_s=duration, language=language, channels=1)

    # --- speech-to-text ---------------------------------------------------------------------

    def _language(
        self, sources: Sequence[tuple[npt.NDArray[np.float32], list[Region]]]
    ) -> str | None:
        """STT_LANGUAGE when set; else detected over the whole call: each source's vote is
        weighted by its probability and its amount of speech."""
        forced = self.settings.stt_language
        if forced:
            return forced
        votes: dict[str, float] = {}
        for signal, regions in sources:
            if not regions:
                continue
            with out_of_memory_as_error(self.device, "detecting the language"):
                detected = self.stt.detect_language(signal, regions)
            if detected is None:
                continue
            code, probability = detected
            votes[code] = votes.get(code, 0.0) + probability * total_speech_s(regions)
        if not votes:
            return None
        return max(votes.items(), key=lambda item: item[1])[0]

    def _transcribe(
        self,
        signal: npt.NDArray[np.float32],
        regions: list[Region],
        language: str | None,
        hook: ProgressCallback,
        done: float,
        total: float,
    ) -> tuple[list[Word], float]:
        words: list[Word] = []
        for chunk in chunk_regions(regions, TRANSCRIBE_CHUNK_SPEECH_S):
            with out_of_memory_as_error(self.device, "transcribing"):
                result = self.stt.transcribe(signal, regions=chunk, language=language)
            words.extend(result.words)
            done += total_speech_s(chunk)
            hook(Stage.TRANSCRIBING, done, total)
        words.sort(key=lambda w: (w.start_s, w.end_s))
        return words, done


def chunk_regions(regions: list[Region], speech_s: float) -> list[list[Region]]:
    """Consecutive groups of regions holding about `speech_s` of speech each."""
    chunks: list[list[Region]] = []
    current: list[Region] = []
    current_s = 0.0
    for region in regions:
        current.append(region)
        current_s += region[1] - region[0]
        if current_s >= speech_s:
            chunks.append(current)
            current, current_s = [], 0.0
    if current:
        chunks.append(current)
    return chunks
