"""Speech-pipeline settings: one pydantic-settings class read from the environment (and `.env`).

Env names are flat (no prefix) because operators set them beside the rest of the service's
settings in one environment: `DEVICE=cuda`, `STT_MODEL=large-v3`, `NUM_SPEAKERS=2`, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.ml.types import SpeakerHints

DeviceSetting = Literal["auto", "cpu", "cuda"]
DiarizationBackendName = Literal["auto", "neural", "local", "channel", "pyannote", "pyannoteai"]
SttBackendName = Literal["faster-whisper", "onnx", "transformers", "openai", "aisha"]


class PipelineSettings(BaseSettings):
    """Everything the speech pipeline can be configured with.

    The defaults run fully offline on CPU with the models that ship inside PyPI packages.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- runtime -----------------------------------------------------------------------
    device: DeviceSetting = "auto"
    """`auto` picks CUDA when torch sees a GPU, else CPU."""
    cpu_threads: int = Field(default=0, ge=0)
    """Intra-op threads for torch / onnxruntime / CTranslate2; 0 = all cores of this process."""
    models_dir: Path = Path(".ovozly/models")
    """Where `ovozly models fetch` puts Hub models (`<dir>/<org>/<name>`) and workers read
    them. Workers never download: a named model missing here fails the start-up check."""

    # --- diarization -------------------------------------------------------------------
    diarization_backend: DiarizationBackendName = "auto"
    """`auto`: `channel` for true stereo recordings, `local` for mono (silero-vad +
    Resemblyzer: better on the bench's assembled two-party calls and 15x faster on CPU).
    `neural` (segmentation-3.0 + CAM++, overlap-aware) is better on the shared diarization
    files and their telephone copies (docs/diarization.md); `channel` keeps `local` for mono."""
    diarization_model: str = "pyannote/speaker-diarization-community-1"
    """Model id or local path for `pyannote`; model name for `pyannoteai` (e.g. `precision-2`)."""
    num_speakers: int | None = Field(default=None, ge=1)
    min_speakers: int | None = Field(default=None, ge=1)
    max_speakers: int | None = Field(default=None, ge=1)
    """NUM/MIN/MAX_SPEAKERS are the deployment-wide default hints (a contact centre whose
    calls have two or three voices sets MIN_SPEAKERS=2 MAX_SPEAKERS=3); a call's own hints
    replace them. Either way they are honoured exactly."""
    diarization_max_speakers: int = Field(default=8, ge=1)
    """The most speakers the automatic count may find when no hint bounds it."""
    agent_channel: int = Field(default=0, ge=0)
    """For stereo calls: the channel the agent is recorded on (0 = left)."""
    pyannoteai_token: SecretStr | None = None
    pyannoteai_base_url: str | None = None
    """Override of the pyannoteAI API address (tests point it at a loopback server)."""
    hf_token: SecretStr | None = None

    # --- voiceprints ---------------------------------------------------------------------
    voiceprints_enabled: bool = True
    """Learn each agent's voice from their calls and tell the agent by voice on mono calls.
    Off: no speaker embedding leaves the pipeline, nothing is learned or matched."""
    voiceprint_min_calls: int = Field(default=3, ge=2)
    """Calls of an agent a voiceprint must be learned from before it assigns roles (never
    one: a single call cannot say which of its voices is the agent's)."""

    # --- languages and speech-to-text ---------------------------------------------------
    languages: str = "uz,ru,en"
    """The centre's languages (ISO 639-1, comma-separated). Each speaker turn is identified
    as one of them; see `app.ml.stt.languages.CLOSE_RELATIVES` for how relatives map."""
    stt_models: str | None = None
    """Per-language routes, e.g. `uz=onnx:/models/gigaam-multilingual,ru=onnx:/models/gigaam-v3`
    (syntax in `app.ml.stt.routes`). Unset: STT_BACKEND/STT_MODEL as one model for every
    language when either is set, else the offline defaults."""
    stt_backend: SttBackendName = "faster-whisper"
    stt_model: str | None = None
    """Model name or path for the single-model case; None = the per-language defaults."""
    stt_language: str | None = None
    """ISO 639-1 code to force for every turn; None = identify each turn's language."""
    stt_compute_type: str = "auto"
    """CTranslate2 compute type; `auto` = int8 on CPU, float16 on CUDA."""
    stt_batch_size: int = Field(default=8, ge=1)
    """Whisper windows decoded together (faster-whisper's batched pipeline), on CPU and
    CUDA; 1 = the sequential decoder (Whisper's own windowing and temperature fallback)."""
    stt_beam_size: int = Field(default=0, ge=0)
    """0 = auto: greedy on CPU (about 2x faster, pooled WER 6.3% vs 4.9% with tiny.en on
    the shared English references), beam 5 on CUDA."""
    stt_careful_beam_size: int = Field(default=5, ge=0)
    """Beam for decoding again a stretch of speech whose first (greedy) decoding looks
    unreliable: low mean log-probability, a loop, or no word where the VAD heard speech
    (docs/languages.md). 0 = never; the careful pass costs only where it fires."""
    stt_log_prob_fallback: Literal["auto", "on", "off"] = "auto"
    """Sequential decoder only (STT_BATCH_SIZE=1): re-decode a Whisper window at rising
    temperatures when its mean log-probability is below -1 (openai-whisper's rule). `auto` =
    on for CUDA, off on CPU: there it mostly fired on the fraction of a second left after a
    group's last word, where 6 re-decodes with 5 samples each cost about 3 s per call and
    changed no word on the shared references. Windows that look like a loop (compression
    ratio) are re-decoded either way."""
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_stt_model: str = "gpt-4o-transcribe"
    aisha_api_key: SecretStr | None = None
    aisha_base_url: str = "https://back.aisha.group"

    @model_validator(mode="after")
    def _check_speaker_bounds(self) -> PipelineSettings:
        problem = self.speaker_hints.problem()
        if problem is not None:
            raise ValueError(f"NUM_SPEAKERS / MIN_SPEAKERS / MAX_SPEAKERS: {problem}")
        return self

    @model_validator(mode="after")
    def _check_languages(self) -> PipelineSettings:
        from app.ml.stt.languages import parse_language_list
        from app.ml.stt.routes import parse_stt_models

        try:
            codes = parse_language_list(self.languages)
        except ValueError as error:
            raise ValueError(f"LANGUAGES: {error}") from None
        if self.stt_models:
            parse_stt_models(self.stt_models, codes)
        if self.stt_language and self.stt_language not in codes:
            raise ValueError(
                f"STT_LANGUAGE={self.stt_language} is not one of LANGUAGES={','.join(codes)}"
            )
        return self

    @property
    def language_codes(self) -> tuple[str, ...]:
        from app.ml.stt.languages import parse_language_list

        return parse_language_list(self.languages)

    @property
    def speaker_hints(self) -> SpeakerHints:
        """The settings' default hints; a per-call SpeakerHints overrides them."""
        return SpeakerHints(self.num_speakers, self.min_speakers, self.max_speakers)

    def local_model_path(self) -> Path | None:
        """`diarization_model` as a path when it names an existing local file or folder."""
        path = Path(self.diarization_model).expanduser()
        return path if path.exists() else None
