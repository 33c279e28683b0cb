"""Diarization backends behind one `Diarizer` protocol; `build_mono_diarizer` picks one.

Backends import their heavy dependencies lazily, so configuring `pyannoteai` never loads
torch models and `pyannote` is only imported where it is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.ml.compute import MODELS
from app.ml.diarization.base import (
    Diarization,
    DiarizationError,
    Diarizer,
    SpeakerTurn,
    speaker_label,
)

if TYPE_CHECKING:
    from app.ml.diarization.local import ResemblyzerEmbedder
    from app.ml.settings import PipelineSettings
    from app.ml.speech.vad import SileroVad

__all__ = [
    "Diarization",
    "DiarizationError",
    "Diarizer",
    "SpeakerTurn",
    "build_mono_diarizer",
    "speaker_label",
]


def speaker_embedder(device: str) -> ResemblyzerEmbedder:
    """The process's Resemblyzer encoder on `device` (loaded once)."""
    from app.ml.diarization.local import ResemblyzerEmbedder

    return MODELS.get(("resemblyzer", device), lambda: ResemblyzerEmbedder(device))


def build_mono_diarizer(settings: PipelineSettings, device: str, vad: SileroVad) -> Diarizer:
    """The diarizer for single-channel audio (and stereo whose hints channels cannot meet)."""
    backend = settings.diarization_backend
    if backend == "neural":
        from app.ml.diarization.neural.models import embedder, segmenter
        from app.ml.diarization.neural.pipeline import NeuralDiarizationParams, NeuralDiarizer

        params = NeuralDiarizationParams(default_max_speakers=settings.diarization_max_speakers)
        return NeuralDiarizer(segmenter(device), embedder(device), params)
    if backend in {"auto", "local", "channel"}:
        from app.ml.diarization.local import LocalDiarizationParams, LocalDiarizer

        return LocalDiarizer(
            vad,
            speaker_embedder(device),
            LocalDiarizationParams(default_max_speakers=settings.diarization_max_speakers),
        )
    if backend == "pyannote":
        from app.ml.diarization.pyannote_backend import PyannoteDiarizer, load_pyannote_pipeline

        token_secret = settings.hf_token or settings.pyannoteai_token
        token = token_secret.get_secret_value() if token_secret else None
        pipeline = MODELS.get(
            ("pyannote", settings.diarization_model, device),
            lambda: load_pyannote_pipeline(
                settings.diarization_model,
                token=token,
                device=device,
                models_dir=settings.models_dir,
            ),
        )
        return PyannoteDiarizer(pipeline, device)
    if backend == "pyannoteai":
        from app.ml.diarization.pyannoteai_backend import DEFAULT_MODEL, PyannoteAIDiarizer

        token = settings.pyannoteai_token.get_secret_value() if settings.pyannoteai_token else ""
        model = settings.diarization_model
        # The settings default names a pyannote.audio checkpoint, not a hosted model.
        if "/" in model:
            model = DEFAULT_MODEL
        return PyannoteAIDiarizer(token, model=model, base_url=settings.pyannoteai_base_url)
    raise DiarizationError(f"unknown DIARIZATION_BACKEND {backend!r}")
