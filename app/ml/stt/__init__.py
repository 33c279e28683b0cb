"""Speech-to-text backends behind one interface; `build_speech_to_text` picks one by settings,
`load_routed_models` loads every model the STT_MODELS routes name (once per process)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from app.ml.stt.base import SAMPLE_RATE, SpeechToText, SttError, SttResult

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings
    from app.ml.stt.routes import ModelSpec, SttRoutes

__all__ = [
    "SAMPLE_RATE",
    "SpeechToText",
    "SttError",
    "SttResult",
    "build_speech_to_text",
    "import_backend",
    "load_model",
    "load_routed_models",
]

BACKENDS = ("faster-whisper", "onnx", "transformers", "openai", "aisha")

NATIVE_LOADING_BACKENDS = frozenset({"faster-whisper"})
"""Backends whose model load is native code that releases the GIL (CTranslate2 reading and
laying out the weights; the bundled model's SHA-256): a worker loads these in threads while
its main thread imports torch and loads the other models (app.ml.models.selfcheck)."""


def import_backend(backend: str) -> None:
    """Imports a backend's libraries now, in the calling thread, so that a load in another
    thread only loads: Python imports hold the GIL and gain nothing from a thread.

    For faster-whisper, torch comes first where it is installed: torch and CTranslate2
    each bring their own OpenMP runtime, and with CTranslate2's loaded first every call
    afterwards took 1.3 to 2 times the CPU (a 30 s call: 3.4 s -> 4.5 to 7.4 s on 2 cores).
    """
    if backend == "faster-whisper":
        with contextlib.suppress(ImportError):
            import torch  # noqa: F401

        import faster_whisper  # noqa: F401

        import app.ml.stt.faster_whisper_backend  # noqa: F401


def load_routed_models(
    routes: SttRoutes, settings: PipelineSettings, device: str
) -> dict[str, SpeechToText]:
    """Language -> loaded model for every route; each distinct model loads once per process
    (through the process model cache). Raises SttError naming the model that is missing or
    fails to load, or that cannot transcribe a language routed to it."""
    loaded: dict[str, SpeechToText] = {}
    for spec in routes.models():
        model = load_model(spec, settings, device, purpose=", ".join(routes.languages_of(spec)))
        for language in routes.languages_of(spec):
            if _can_transcribe(model, language):
                loaded[language] = model
            elif routes.explicit:
                raise SttError(
                    f"STT_MODELS routes {language!r} to {spec.name}, which is English-only: "
                    "route it to a multilingual model (docs/languages.md)"
                )
    return loaded


def load_model(
    spec: ModelSpec, settings: PipelineSettings, device: str, *, purpose: str
) -> SpeechToText:
    """One configured model, loaded once per process (the process model cache); `purpose`
    names what it is for in the error raised when it cannot be loaded."""
    from app.ml.compute import MODELS

    key = (
        "stt",
        spec,
        settings.models_dir,
        settings.stt_compute_type,
        settings.stt_batch_size,
        settings.stt_beam_size,
        settings.stt_log_prob_fallback,
        settings.cpu_threads,
        device,
    )
    try:
        return MODELS.get(key, lambda: build_model(spec, settings, device))
    except SttError as error:
        raise SttError(
            f"speech model {spec.name} (for {purpose}) could not be loaded: {error.message}",
            retryable=error.retryable,
        ) from error


def _can_transcribe(model: SpeechToText, language: str) -> bool:
    from app.ml.stt.faster_whisper_backend import FasterWhisperStt

    if isinstance(model, FasterWhisperStt) and not model.is_multilingual:
        return language == "en"
    return True


def build_model(spec: ModelSpec, settings: PipelineSettings, device: str) -> SpeechToText:
    """One configured model (not cached: `load_routed_models` caches)."""
    if spec.backend == "onnx":
        from app.ml.compute import effective_threads
        from app.ml.stt.onnx_backend import OnnxAsrStt

        assert spec.model is not None, "parse_stt_models requires a directory for onnx"
        return OnnxAsrStt.load(
            Path(spec.model),
            model_type=spec.onnx_type,
            threads=effective_threads(settings.cpu_threads),
            device=device,
        )
    return build_speech_to_text(
        settings.model_copy(update={"stt_backend": spec.backend, "stt_model": spec.model}),
        device,
    )


def build_speech_to_text(settings: PipelineSettings, device: str) -> SpeechToText:
    """Build the configured backend once per worker; `device` is "cpu" or "cuda[:N]".

    Backend modules are imported lazily so a worker configured for a hosted API never
    imports torch or CTranslate2.
    """
    backend = settings.stt_backend
    if backend == "onnx":
        from app.ml.stt.routes import ModelSpec

        if not settings.stt_model:
            raise SttError("STT_BACKEND=onnx needs STT_MODEL: an onnx-asr model directory")
        return build_model(ModelSpec("onnx", settings.stt_model), settings, device)
    if backend == "faster-whisper":
        import_backend(backend)
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
