"""Settings of the conversation analyzer, read from the environment (flat names, no prefix)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalysisBackend(StrEnum):
    LOCAL = "local"
    OPENAI = "openai"


class AnalysisSettings(BaseSettings):
    """Knobs of `build_analyzer`; every field maps to the upper-case env var of its name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    analysis_backend: AnalysisBackend = AnalysisBackend.LOCAL
    analysis_output_language: str = "en"
    """Language of generated text (summary labels, issue titles, actions): en, ru or uz."""
    redact_pii: bool = True
    intent_catalog: Path | None = None
    """An operator YAML catalogue merged over the bundled one (same intent name replaces)."""
    intent_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    intent_embeddings: bool = True
    """Match English turns against the catalogue's English examples with MiniLM."""
    person_names: bool = True
    """Run the name recogniser (natasha for Russian, introduction phrases elsewhere)."""
    interruption_threshold_s: float = Field(default=0.5, ge=0.0)
    agent_channel: int = 0
    """For stereo recordings: the channel the agent is recorded on."""
    keypoints_max: int = Field(default=5, ge=0)
    summary_sentences: int = Field(default=3, ge=1)

    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_s: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=4, ge=0)
    openai_backoff_s: float = Field(default=1.0, ge=0)
    """First retry delay; doubles per attempt (at most 30 s) unless the server sends Retry-After."""
    openai_chunk_chars: int = Field(default=24_000, ge=1_000)
    """Transcript characters per request; longer calls are analysed in chunks and merged."""
    openai_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
