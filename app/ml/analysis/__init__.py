"""Conversation analysis: one `Analyzer` interface, a local offline backend (default) and an
OpenAI-compatible LLM backend, chosen by `AnalysisSettings.analysis_backend`.

The worker builds one analyzer per process and calls it from a thread:

    analyzer = build_analyzer(AnalysisSettings())
    insight = analyzer.analyze(transcript, role_overrides=..., hook=hook)

`AnalysisError` means the call must end FAIL; its message is safe to store and show.
"""

from __future__ import annotations

from app.ml.analysis.base import Analyzer
from app.ml.analysis.contract import insight_to_contract_dict
from app.ml.analysis.errors import AnalysisError
from app.ml.analysis.settings import AnalysisBackend, AnalysisSettings


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
