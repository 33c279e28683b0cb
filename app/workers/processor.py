"""The speech pipeline and the analyzer, loaded once per worker process and reused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.ml.types import CallInsight, SpeakerHints, Stage, Transcript

if TYPE_CHECKING:
    from app.ml.analysis import Analyzer
    from app.ml.pipeline import SpeechPipeline

# Share of the overall progress bar each stage fills, in pipeline order.
STAGE_SPANS: dict[Stage, tuple[float, float]] = {
    Stage.DECODING: (0.0, 0.05),
    Stage.DIARIZING: (0.05, 0.35),
    Stage.TRANSCRIBING: (0.35, 0.85),
    Stage.ANALYZING: (0.85, 1.0),
}

ProgressSink = Callable[[Stage, float], None]


class JobDeadlineExceeded(Exception):
    """Raised from the progress hook, the one place a running pipeline checks in."""


class JobSuperseded(Exception):
    """The call was deleted or reprocessed while this job ran: stop, write nothing."""


def overall_progress(stage: Stage, completed: float, total: float) -> float:
    start, end = STAGE_SPANS[stage]
    fraction = min(max(completed / total, 0.0), 1.0) if total > 0 else 0.0
    return start + (end - start) * fraction


@dataclass
class ThrottledProgress:
    """Forwards progress to `sink` on a stage change or a step of at least `min_step`, and
    enforces the job deadline. Called from the pipeline's thread."""

    sink: ProgressSink
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
        self.sink(stage, progress)


@dataclass
class CallProcessor:
    pipeline: SpeechPipeline
    analyzer: Analyzer
    analysis_backend: str

    @classmethod
    def load(cls) -> CallProcessor:
        from app.ml.analysis import build_analyzer
        from app.ml.analysis.models import warm_up
        from app.ml.analysis.settings import AnalysisSettings
        from app.ml.pipeline import SpeechPipeline
        from app.ml.settings import PipelineSettings

        analysis_settings = AnalysisSettings()
        warm_up(
            embeddings=analysis_settings.intent_embeddings, names=analysis_settings.person_names
        )
        return cls(
            pipeline=SpeechPipeline(PipelineSettings()),
            analyzer=build_analyzer(analysis_settings),
            analysis_backend=str(analysis_settings.analysis_backend),
        )

    def process(
        self, audio_path: Path, hints: SpeakerHints, progress: ThrottledProgress
    ) -> tuple[Transcript, CallInsight]:
        """Blocking: the worker runs this in a thread."""
        transcript = self.pipeline(audio_path, hints=hints, hook=progress)
        progress(Stage.ANALYZING, 0, 1)
        insight = self.analyzer.analyze(transcript, hook=progress)
        return transcript, insight
