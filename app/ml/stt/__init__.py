"""Speech-to-text backends behind one interface; `build_speech_to_text` picks one by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.ml.stt.base import SAMPLE_RATE, SpeechToText, SttError, SttResult

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

__all__ = ["SAMPLE_RATE", "SpeechToText", "SttError", "SttResult", "build_speech_to_text"]

BACKENDS = ("faster-whisper", "transformers", "openai", "aisha")


def build_speech_to_text(settings: PipelineSettings, device: str) -> SpeechToText:
    """Build the configured backend once per worker; `device` is "cpu" or "cuda[:N]".

    Backend modules are imported lazily so a worker configured for a hosted API never
    imports torch or CTranslate2.
    """
    backend = settings.stt_backend
    if backend == "faster-whisper":
        from app.ml.stt.faster_whisper_backend import FasterWhisperStt

        return FasterWhisperStt.from_settings(settings, device)
    if backend == "transformers":
        from app.ml.stt.transformers_backend import TransformersStt

        return TransformersStt.from_settings(settings, device)
    if backend == "openai":
        from app.ml.stt.openai_backend import OpenAiStt

        return OpenAiStt.from_settings(settings)
    if backend == "aisha":
        from app.ml.stt.aisha_backend import AishaStt

        return AishaStt.from_settings(settings)
    raise SttError(f"unknown STT_BACKEND {backend!r}; choose one of: {', '.join(BACKENDS)}")
