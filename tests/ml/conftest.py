"""Fixtures for the speech-pipeline tests: one pipeline per session (models load once)."""

from __future__ import annotations

import pytest

from app.ml.settings import PipelineSettings
from app.ml.speech.pipeline import SpeechPipeline


@pytest.fixture(scope="session")
def pipeline() -> SpeechPipeline:
    return SpeechPipeline(PipelineSettings(_env_file=None, device="cpu"))
