"""Conversation analysis: one `Analyzer` interface, a local offline backend (default) and an
OpenAI-compatible LLM backend, chosen by `AnalysisSettings.analysis_backend`.

The worker builds one analyzer per process and calls it from a thread:

    analyzer = build_analyzer(AnalysisSettings())
    insight = analyzer.analyze(transcript, role_overrides=..., hook=hook)

`AnalysisError` means the call must end FAIL; its message is safe to store and show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from app.core.enums import SpeakerRole
from app.ml.analysis.contract import insight_to_contract_dict
from app.ml.analysis.errors import AnalysisError
from app.ml.analysis.settings import AnalysisBackend, AnalysisSettings
from app.ml.types import CallInsight, ProgressCallback, Transcript, no_progress


class Analyzer(Protocol):
    def analyze(
        self,
        transcript: Transcript,
        *,
        role_overrides: Mapping[str, SpeakerRole] | None = None,
        hook: ProgressCallback = no_progress,
    ) -> CallInsight:
        """Annotated (and, with REDACT_PII, redacted) segments, analysis and metrics.
        Raises AnalysisError when the call must end FAIL."""
        ...


def build_analyzer(settings: AnalysisSettings) -> Analyzer:
    """The configured backend; the catalogue is read (and validated) here, models lazily."""
    if settings.analysis_backend is AnalysisBackend.OPENAI:
        from app.ml.analysis.openai_backend import OpenAIAnalyzer

        return OpenAIAnalyzer(settings)
    from app.ml.analysis.local import LocalAnalyzer

    return LocalAnalyzer(settings)


__all__ = [
    "AnalysisError",
    "AnalysisSettings",
    "Analyzer",
    "build_analyzer",
    "insight_to_contract_dict",
]
