"""The analyzer every backend extends: a call with no speech is answered here once, the
rest by the backend's `analyze_speech`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from app.core.enums import SpeakerRole
from app.ml.analysis.settings import AnalysisSettings
from app.ml.types import CallInsight, ProgressCallback, Stage, Transcript, no_progress

RoleOverrides = Mapping[str, SpeakerRole] | None
"""Speaker label -> role the caller knows (speaker hints, a matched voiceprint)."""


class Analyzer(ABC):
    settings: AnalysisSettings

    def analyze(
        self,
        transcript: Transcript,
        *,
        role_overrides: RoleOverrides = None,
        hook: ProgressCallback = no_progress,
    ) -> CallInsight:
        """Annotated (and, with REDACT_PII, redacted) segments, analysis and metrics.
        Raises AnalysisError when the call must end FAIL."""
        # Imported here: annotate reads app.ml.redaction, which reads this package's
        # entities, and this module is imported with the package.
        from app.ml.analysis.annotate import empty_insight, is_empty

        if is_empty(transcript):
            hook(Stage.ANALYZING, 1, 1)
            return empty_insight(transcript, self.settings)
        return self.analyze_speech(transcript, role_overrides, hook)

    @abstractmethod
    def analyze_speech(
        self, transcript: Transcript, role_overrides: RoleOverrides, hook: ProgressCallback
    ) -> CallInsight:
        """`analyze` for a transcript with speech; progress as `Stage.ANALYZING`."""
