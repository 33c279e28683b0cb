"""The speech pipeline and the analyzer, loaded once per worker process and reused."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.enums import SpeakerRole
from app.core.errors import OvozlyError, ProcessingError
from app.ml.types import (
    CallInsight,
    ProgressCallback,
    RoleDecision,
    SpeakerHints,
    Stage,
    Transcript,
    no_progress,
    overall_progress,
)

if TYPE_CHECKING:
    from app.ml.analysis import Analyzer
    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.models.selfcheck import SelfCheckReport
    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline
    from app.ml.voiceprints.matching import AgentVoice


class JobDeadlineExceeded(OvozlyError):
    """Raised from the progress callback, the one place a running pipeline checks in."""

    def __init__(self) -> None:
        super().__init__("the job ran past its deadline")


class JobSuperseded(OvozlyError):
    """The call was deleted or reprocessed while this job ran: stop, write nothing."""

    def __init__(self) -> None:
        super().__init__("the call was deleted or reprocessed while this job ran")


@dataclass
class ThrottledProgress:
    """Forwards progress to `sink` on a stage change or a step of at least `min_step` of the
    whole call (never backwards within a stage), and enforces the job deadline. Called from
    the pipeline's thread."""

    sink: ProgressCallback
    deadline: float
    superseded: threading.Event = field(default_factory=threading.Event)
    min_step: float = 0.05
    _last_stage: Stage | None = field(default=None, init=False)
    _last_progress: float = field(default=-1.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __call__(self, stage: Stage, completed: float, total: float) -> None:
        if time.monotonic() > self.deadline:
            raise JobDeadlineExceeded()
        if self.superseded.is_set():
            raise JobSuperseded()
        progress = overall_progress(stage, completed, total)
        with self._lock:
            small_step = progress - self._last_progress < self.min_step
            stage_done = total > 0 and completed >= total
            repeated = progress == self._last_progress
            if stage == self._last_stage and (repeated or (small_step and not stage_done)):
                return
            self._last_stage = stage
            self._last_progress = progress
        self.sink(stage, completed, total)


class ModelCheckFailed(ProcessingError):
    """A configured model could not be loaded or run at start-up; the worker takes no jobs."""

    def __init__(self, report: SelfCheckReport) -> None:
        super().__init__(report.summary())
        self.report = report


class AnalysisModels:
    """The analysis models (language identification, sentence embeddings, Russian names),
    loaded and checked in a thread of their own once the worker has said it is ready.

    They are needed only after a call's speech pipeline, and loading them is a large part
    of a worker's start-up (about 3 s of CPU on the default configuration, half of it
    natasha's Russian word embeddings), so the worker takes its first job as soon as the
    speech models pass their check; that job waits here, at its analysis stage, only if the
    load is not done by then. No job ends later than if the worker had waited for every
    model first. The load ends with a rehearsal: the local analyzer analyses a short
    made-up call, so what it builds on first use (the intent examples' embeddings, the
    catalogues, the entity matchers) is built before a real call needs it.
    """

    def __init__(
        self,
        pipeline: PipelineSettings,
        settings: AnalysisSettings,
        interruption_threshold_s: float = 0.5,
    ) -> None:
        self._pipeline = pipeline
        self._settings = settings
        self._interruption_threshold_s = interruption_threshold_s
        self.future: Future[tuple[Analyzer, SelfCheckReport]] = Future()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begins loading in a daemon thread (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            # Running: a waiter that gives up (a cancelled asyncio wrapper) cannot cancel it.
            self.future.set_running_or_notify_cancel()
        threading.Thread(target=self._load, name="analysis-models", daemon=True).start()

    def _load(self) -> None:
        from app.ml.analysis import build_analyzer
        from app.ml.analysis.models import warm_up
        from app.ml.analysis.settings import AnalysisBackend
        from app.ml.models.selfcheck import run_self_check

        try:
            report = run_self_check(self._pipeline, self._settings, speech=False)
            if not report.ok:
                raise ModelCheckFailed(report)
            warm_up(embeddings=self._settings.intent_embeddings, names=self._settings.person_names)
            analyzer = build_analyzer(self._settings)
            if self._settings.analysis_backend is AnalysisBackend.LOCAL:
                # Local only: a hosted analyzer would be sent the made-up call.
                rehearse(analyzer, self._interruption_threshold_s)
            self.future.set_result((analyzer, report))
        except BaseException as exc:
            self.future.set_exception(exc)

    @property
    def loading(self) -> bool:
        """Started and not finished."""
        return self._started and not self.future.done()

    def analyzer(self) -> Analyzer:
        """The analyzer, once its models are loaded (starting the load if nobody has)."""
        self.start()
        return self.future.result()[0]


REHEARSAL_TURNS = (
    ("SPEAKER_00", "en", "Thank you for calling, my name is Anna, how can I help you today?"),
    ("SPEAKER_01", "en", "Hi, I want to close my account, the payment failed again yesterday."),
    ("SPEAKER_00", "ru", "Меня зовут Анна Петрова, назовите номер +7 912 345 67 89, пожалуйста."),
    ("SPEAKER_01", "uz", "Assalomu alaykum, kartamdan pul yechildi lekin to'lov o'tmadi."),
    ("SPEAKER_00", "en", "I am sorry about that, I will refund the money, is there anything else?"),
)
"""A short made-up call in the three languages, with an intent, a name and a phone number:
every step of the local analyzer has something to do."""


def rehearsal_transcript() -> Transcript:
    from app.ml.types import TranscriptSegment

    segments = [
        TranscriptSegment(speaker, 4.0 * i, 4.0 * i + 3.5, text, language=language)
        for i, (speaker, language, text) in enumerate(REHEARSAL_TURNS)
    ]
    # One untranscribed turn, as the pipeline leaves them: complete_insight has one to merge.
    segments.append(TranscriptSegment("SPEAKER_01", 20.0, 21.0, ""))
    return Transcript(segments=segments, duration_s=21.0, language="en")


def analyze_call(
    analyzer: Analyzer,
    transcript: Transcript,
    interruption_threshold_s: float,
    hook: ProgressCallback = no_progress,
    voice_roles: dict[str, RoleDecision] | None = None,
) -> CallInsight:
    """A job's analysis: the analyzer reads text only, so turns no model could transcribe
    are put back afterwards (`complete_insight`). Roles the voice decided win over words;
    each speaker's statistics say what decided their role."""
    from app.ml.language.report import complete_insight
    from app.ml.voiceprints.roles import with_role_sources

    voice = voice_roles or {}
    overrides = {speaker: decision.role for speaker, decision in voice.items()}
    insight = analyzer.analyze(transcript, role_overrides=overrides or None, hook=hook)
    insight = complete_insight(
        transcript, insight, interruption_threshold_s=interruption_threshold_s
    )
    if overrides:
        insight = with_voice_roles(
            insight, overrides, transcript.duration_s, interruption_threshold_s
        )
    return with_role_sources(transcript, insight, voice)


def with_voice_roles(
    insight: CallInsight,
    roles: dict[str, SpeakerRole],
    duration_s: float,
    interruption_threshold_s: float,
) -> CallInsight:
    """The voice's roles on every segment, those the analyzer never read included (speech
    no model transcribes, where words cannot tell the agent), and the metrics recomputed."""
    from dataclasses import replace

    from app.ml.analysis.metrics import compute_metrics

    segments = [
        replace(s, role=roles[s.speaker]) if s.speaker in roles else s for s in insight.segments
    ]
    known = {s.speaker: s.role for s in insight.metrics.speakers}
    metrics = compute_metrics(
        segments,
        duration_s,
        {**known, **roles},
        interruption_threshold_s=interruption_threshold_s,
    )
    return replace(insight, segments=segments, metrics=metrics)


def rehearse(analyzer: Analyzer, interruption_threshold_s: float) -> CallInsight:
    """A job's analysis of the made-up call, so its first-use costs fall before the worker's
    first real call."""
    return analyze_call(analyzer, rehearsal_transcript(), interruption_threshold_s)


@dataclass
class CallProcessor:
    pipeline: SpeechPipeline
    analysis: AnalysisModels
    analysis_backend: str
    check: SelfCheckReport | None = None
    """The start-up self-check of the speech models (None when built around given parts);
    the analysis models' own check comes with `analysis.future`."""
    interruption_threshold_s: float = 0.5

    @classmethod
    def load(cls) -> CallProcessor:
        """Loads and checks every speech model (`ovozly worker --check` runs the same check
        on every model) and builds the pipeline from the now-cached models; the analysis
        models load later (`AnalysisModels`)."""
        from app.ml.analysis.settings import AnalysisSettings
        from app.ml.models.selfcheck import run_self_check
        from app.ml.settings import PipelineSettings
        from app.ml.speech.pipeline import SpeechPipeline

        pipeline_settings = PipelineSettings()
        analysis_settings = AnalysisSettings()
        # Concurrent: the Whisper models load in threads while torch is imported here.
        report = run_self_check(pipeline_settings, concurrent=True)
        if not report.ok:
            raise ModelCheckFailed(report)
        return cls(
            pipeline=SpeechPipeline(pipeline_settings),
            analysis=AnalysisModels(
                pipeline_settings, analysis_settings, analysis_settings.interruption_threshold_s
            ),
            analysis_backend=str(analysis_settings.analysis_backend),
            check=report,
            interruption_threshold_s=analysis_settings.interruption_threshold_s,
        )

    @property
    def analyzer(self) -> Analyzer:
        return self.analysis.analyzer()

    def process(
        self,
        audio_path: Path,
        hints: SpeakerHints,
        progress: ThrottledProgress,
        agent_voice: AgentVoice | None = None,
    ) -> tuple[Transcript, CallInsight, dict[str, RoleDecision]]:
        """Blocking: the worker runs this in a thread. On a mono call the speaker matching
        `agent_voice` (the call's agent's voiceprint) is the agent."""
        from app.ml.voiceprints.matching import match_agent

        transcript = self.pipeline(audio_path, hints=hints, hook=progress)
        voice_roles: dict[str, RoleDecision] = {}
        if agent_voice is not None and transcript.channels == 1 and transcript.speaker_embeddings:
            voice_roles = match_agent(transcript.speaker_embeddings, agent_voice)
        progress(Stage.ANALYZING, 0, 1)
        insight = analyze_call(
            self.analyzer,
            transcript,
            self.interruption_threshold_s,
            hook=progress,
            voice_roles=voice_roles,
        )
        return transcript, insight, voice_roles
