"""The speech pipeline: decode -> diarize -> identify languages -> transcribe, as named stages.

    pipeline = SpeechPipeline(PipelineSettings())          # once per worker process
    transcript = pipeline(path, hints=SpeakerHints(num_speakers=2), hook=progress)

Stereo recordings whose channels differ are diarized by channel (speaker = channel) and
each channel is transcribed on its own; mono (and dual-mono) recordings go through the
configured mono diarizer. Speech is cut into speaker turns; each turn's language is
identified among the configured LANGUAGES, and the speech around each language's turns (the
wider transcription regions, `app.ml.speech.transcription`) goes to the model routed for
that language (STT_MODELS), or stays untranscribed, with a warning, when there is none.
Synchronous: the worker runs it in a thread, off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.core.enums import SpeakerRole
from app.ml.compute import (
    MODELS,
    configure_threads,
    out_of_memory_as_error,
    resolve_device,
    trim_heap,
)
from app.ml.diarization import Diarization, Diarizer, SpeakerTurn, build_mono_diarizer
from app.ml.diarization.channel import ChannelDiarizer
from app.ml.language.identify import TurnLanguageIdentifier
from app.ml.language.report import language_shares, untranscribed_warnings
from app.ml.settings import PipelineSettings
from app.ml.speech.audio import DecodedAudio, decode_audio, release_pages
from app.ml.speech.confidence import poor_audio_warning, segment_confidence
from app.ml.speech.segments import LanguageSpan, segments_from_turns
from app.ml.speech.transcription import language_regions
from app.ml.speech.turns import SpeechTurn, assign_words, channel_turns, mono_turns
from app.ml.speech.vad import TRANSCRIPTION_VAD, Region, SileroVad, total_speech_s
from app.ml.stt import SpeechToText, load_model, load_routed_models
from app.ml.stt.faster_whisper_backend import FasterWhisperStt
from app.ml.stt.routes import BUNDLED_BASE, ModelSpec, SttRoutes, routes_from_settings
from app.ml.types import (
    ProgressCallback,
    SpeakerEmbeddings,
    SpeakerHints,
    Stage,
    Transcript,
    TranscriptSegment,
    Word,
    no_progress,
    part_of,
)

Source = tuple[npt.NDArray[np.float32], list[SpeechTurn], list[SpeakerTurn], list[Region]]
"""One signal to transcribe: its samples, its speech turns (the unit of language
identification), the speaker turns its segments follow, and the speech its models
transcribe (`TRANSCRIPTION_VAD` regions, `app.ml.speech.transcription`)."""

TRANSCRIBE_CHUNK_SPEECH_S = 300.0
"""Speech seconds per STT call: bounds STT memory and gives the hook a step on long calls."""


RELEASE_INTERVAL_S = 1.0


def releasing_memory(samples: npt.NDArray[np.float32]) -> Callable[[], None]:
    """A callback that, at most once a second, drops the pages of `samples` read so far
    from resident memory (when they are file-backed) and trims the C heap: for a stage that
    walks a long call without progress reports (language identification, turn by turn,
    held every page of a 4-hour call's samples it had read, about 0.9 GB, until it ended)."""
    last = time.monotonic()

    def release() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= RELEASE_INTERVAL_S:
            release_pages(samples)
            trim_heap()
            last = now

    return release


def releasing_pages(hook: ProgressCallback, samples: npt.NDArray[np.float32]) -> ProgressCallback:
    """`hook`, and with each report `releasing_memory`'s release for a long call's
    file-backed samples: the stages report progress as they go, so memory stays bounded by
    a second's work."""
    if getattr(samples, "_mmap", None) is None:
        return hook
    release = releasing_memory(samples)

    def report(stage: Stage, completed: float, total: float) -> None:
        release()
        hook(stage, completed, total)

    return report


class SpeechPipeline:
    """Built once per process from settings; every model comes from the process cache."""

    def __init__(
        self, settings: PipelineSettings | None = None, *, stt: SpeechToText | None = None
    ) -> None:
        """`stt` replaces the configured routes with one model for every language."""
        self.settings = settings or PipelineSettings()
        s = self.settings
        self.device = resolve_device(s.device)
        self.threads = configure_threads(s.cpu_threads)
        self.vad = MODELS.get(("silero-vad",), SileroVad)
        self.channel_diarizer = ChannelDiarizer(self.vad)
        self.mono_diarizer: Diarizer = build_mono_diarizer(s, self.device, self.vad)
        languages = s.language_codes
        if stt is None:
            self.routes = routes_from_settings(s)
            with out_of_memory_as_error(self.device, "loading the speech-to-text models"):
                self.models = load_routed_models(self.routes, s, self.device)
        else:
            self.routes = SttRoutes(languages, dict.fromkeys(languages, ModelSpec("custom")))
            self.models = dict.fromkeys(languages, stt)
        identifying: FasterWhisperStt | None = None
        if len(languages) > 1 and not s.stt_language:
            with out_of_memory_as_error(self.device, "loading the language identifier"):
                model = load_model(
                    ModelSpec("faster-whisper", BUNDLED_BASE),
                    s,
                    self.device,
                    purpose="language identification",
                )
            assert isinstance(model, FasterWhisperStt)
            identifying = model
        self.identifier = TurnLanguageIdentifier(languages, identifying, forced=s.stt_language)
        if identifying is not None:
            # The identifier's multilingual model is loaded anyway: English-only models decode
            # their unreliable stretches again with it (docs/languages.md).
            for model in self.models.values():
                if isinstance(model, FasterWhisperStt) and not model.is_multilingual:
                    model.decode_carefully_with(identifying)
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
        audio = decode_audio(
            Path(audio_path), progress=lambda done, total: hook(Stage.DECODING, done, total)
        )
        hook(Stage.DECODING, 1, 1)
        hook = releasing_pages(hook, audio.samples)
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
        # One VAD pass per channel serves the diarizer's regions and the wider ones the
        # models transcribe.
        share = 1.0 / audio.channels
        probabilities = [
            self.vad.probabilities(
                audio.samples[channel], part_of(hook, channel * share, (channel + 1) * share)
            )
            for channel in range(audio.channels)
        ]
        samples = audio.samples.shape[1]
        regions = [self.vad.regions(p, samples) for p in probabilities]
        speech = [self.vad.regions(p, samples, TRANSCRIPTION_VAD) for p in probabilities]
        diarization = self.channel_diarizer(audio, hints=hints, regions=regions)
        hook(Stage.DIARIZING, 1, 1)

        sources: list[Source] = []
        for channel in range(audio.channels):
            speaker = next(s for s, c in diarization.speaker_channels.items() if c == channel)
            turns = channel_turns(speaker, channel, regions[channel])
            # A channel's segments follow its turns (pauses up to JOIN_GAP_S inside), not
            # every VAD pause.
            spans = [SpeakerTurn(speaker, t.start_s, t.end_s, channel) for t in turns]
            sources.append((audio.samples[channel], turns, spans, speech[channel]))
        transcript = self._transcribe_turns(sources, audio.duration_s, hook)
        transcript.speaker_turns = list(diarization.turns)
        if self.settings.voiceprints_enabled:
            transcript.speaker_embeddings = self._channel_embeddings(audio, diarization, regions)
        agent = self.settings.agent_channel
        if agent < audio.channels:
            for segment in transcript.segments:
                segment.role = (
                    SpeakerRole.AGENT if segment.channel == agent else SpeakerRole.CUSTOMER
                )
        transcript.channels = audio.channels
        transcript.speaker_channels = dict(diarization.speaker_channels)
        return transcript

    # --- mono (and dual-mono, and stereo whose hints channels cannot meet) ---------------

    def _mono(self, audio: DecodedAudio, hints: SpeakerHints, hook: ProgressCallback) -> Transcript:
        signal = audio.mono()
        hook = releasing_pages(hook, signal)
        # The VAD fills the first half of DIARIZING, the diarizer the second.
        probabilities = self.vad.probabilities(signal, part_of(hook, 0.0, 0.5))
        regions = self.vad.regions(probabilities, signal.size)
        speech = self.vad.regions(probabilities, signal.size, TRANSCRIPTION_VAD)
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
        trim_heap()
        # Turns (and so language identification and transcription) keep the diarizer's
        # regions: built from the wider ones, short turns carried silence and noise, and on
        # the bench's 1-4 s turn calls the turn language fell from 89 % to 66 % of talk time.
        turns = mono_turns(regions, diarization.turns) if regions else []
        # A backend that found no turns where the VAD found speech: the speech turns
        # (all one speaker) are the speaker turns.
        spans = (
            (diarization.turns or [SpeakerTurn(t.speaker, t.start_s, t.end_s) for t in turns])
            if regions
            else []
        )
        transcript = self._transcribe_turns(
            [(signal, turns, spans, speech)], audio.duration_s, hook
        )
        transcript.speaker_turns = list(spans)
        if self.settings.voiceprints_enabled:
            transcript.speaker_embeddings = diarization.speaker_embeddings
        return transcript

    def _channel_embeddings(
        self, audio: DecodedAudio, diarization: Diarization, regions: list[list[Region]]
    ) -> SpeakerEmbeddings:
        """The agent channel's voice centroid from the local speaker encoder (the channel
        diarizer has none): voiceprints learn the agent from it. The customer's channel is
        not embedded: nothing would use it."""
        from app.ml.diarization import speaker_embedder
        from app.ml.voiceprints.encode import embed_speakers

        agent = self.settings.agent_channel
        speech = {
            speaker: (audio.samples[channel], regions[channel])
            for speaker, channel in diarization.speaker_channels.items()
            if channel == agent
        }
        with out_of_memory_as_error(self.device, "embedding the agent channel's voice"):
            return embed_speakers(speaker_embedder(self.device), speech)

    # --- languages and speech-to-text -----------------------------------------------------

    def _transcribe_turns(
        self,
        sources: Sequence[Source],
        duration_s: float,
        hook: ProgressCallback,
    ) -> Transcript:
        """Identify each turn's language, send each language's speech (the wider
        transcription regions around its turns) to its model in one pass (packed, so a model
        pays per 30 s of speech, not per turn), give the words back to the turns by their
        times, and build the segments from each source's speaker turns
        (`app.ml.speech.segments`); speech with no capable model stays, with empty text."""
        total_speech = sum(total_speech_s(speech) for *_, speech in sources) or 1.0
        hook(Stage.TRANSCRIBING, 0, total_speech)
        done = 0.0
        untranscribed: set[str] = set()
        for signal, turns, _, speech in sources:
            with out_of_memory_as_error(self.device, "identifying languages"):
                decisions = self.identifier.identify(
                    signal, turns, after_turn=releasing_memory(signal)
                )
            trim_heap()
            for turn, decision in zip(turns, decisions, strict=True):
                turn.language = decision.language
            speech_of = language_regions(speech, turns)
            for language in sorted({turn.language for turn in turns if turn.language}):
                of_language = [turn for turn in turns if turn.language == language]
                model = self.models.get(language)
                regions = speech_of.get(language, [])
                if model is None:
                    untranscribed.add(language)
                    done += total_speech_s(regions)
                    continue
                words, done = self._transcribe(
                    model, signal, regions, language, hook, done, total_speech
                )
                assign_words(of_language, words)
        hook(Stage.TRANSCRIBING, total_speech, total_speech)

        segments: list[TranscriptSegment] = []
        for _, turns, spans, _ in sources:
            words = [word for turn in turns for word in turn.words]
            segments.extend(
                segments_from_turns(
                    spans,
                    words,
                    word_languages=[turn.language for turn in turns for _ in turn.words],
                    languages=[
                        LanguageSpan(turn.speaker, turn.start_s, turn.end_s, turn.language)
                        for turn in turns
                    ],
                )
            )
        for segment in segments:
            segment.confidence = segment_confidence(segment.words)
        all_turns = [turn for _, turns, *_ in sources for turn in turns]
        segments.sort(key=lambda seg: (seg.start_s, seg.end_s))
        shares = language_shares(all_turns)
        warnings = untranscribed_warnings(shares, untranscribed)
        poor_audio = poor_audio_warning(segments)
        if poor_audio is not None:
            warnings.append(poor_audio)
        return Transcript(
            segments=segments,
            duration_s=duration_s,
            language=shares[0].language if shares else None,
            channels=1,
            languages=shares,
            warnings=warnings,
        )

    def _transcribe(
        self,
        model: SpeechToText,
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
                result = model.transcribe(signal, regions=chunk, language=language)
            words.extend(result.words)
            trim_heap()
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
