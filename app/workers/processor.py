"""The speech pipeline and the analyzer, loaded once per worker process and reused."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import OvozlyError, ProcessingError
from app.ml.types import (
    CallInsight,
    ProgressCallback,
    SpeakerHints,
    Stage,
    Transcript,
    overall_progress,
)

if TYPE_CHECKING:
    from app.ml.analysis import Analyzer
    from app.ml.pipeline import SpeechPipeline
    from app.ml.selfcheck import SelfCheckReport


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


@dataclass
class CallProcessor:
    pipeline: SpeechPipeline
    analyzer: Analyzer
    analysis_backend: str
    check: SelfCheckReport | None = None
    """The start-up self-check that loaded the models (None when built around given parts)."""
    interruption_threshold_s: float = 0.5

    @classmethod
    def load(cls) -> CallProcessor:
        """Loads and checks every configured model (`ovozly worker --check` runs the same
        check), then builds the pipeline and analyzer from the now-cached models."""
        from app.ml.analysis import build_analyzer
        from app.ml.analysis.models import warm_up
        from app.ml.analysis.settings import AnalysisSettings
        from app.ml.pipeline import SpeechPipeline
        from app.ml.selfcheck import run_self_check
        from app.ml.settings import PipelineSettings

        pipeline_settings = PipelineSettings()
        analysis_settings = AnalysisSettings()
        report = run_self_check(pipeline_settings, analysis_settings)
        if not report.ok:
            raise ModelCheckFailed(report)
        warm_up(
            embeddings=analysis_settings.intent_embeddings, names=analysis_settings.person_names
        )
        return cls(
            pipeline=SpeechPipeline(pipeline_settings),
            analyzer=build_analyzer(analysis_settings),
            analysis_backend=str(analysis_settings.analysis_backend),
            check=report,
            interruption_threshold_s=analysis_settings.interruption_threshold_s,
        )

    def process(
        self, audio_path: Path, hints: SpeakerHints, progress: ThrottledProgress
    ) -> tuple[Transcript, CallInsight]:
        """Blocking: the worker runs this in a thread."""
        transcript = self.pipeline(audio_path, hints=hints, hook=progress)
        progress(Stage.ANALYZING, 0, 1)
        from app.ml.language_report import complete_insight

        insight = self.analyzer.analyze(transcript, hook=progress)
        # The analyzer reads text only; turns no model could transcribe are put back here.
        insight = complete_insight(
            transcript, insight, interruption_threshold_s=self.interruption_threshold_s
        )
        return transcript, insight
