"""`DIARIZATION_BACKEND=pyannote`: a pyannote.audio pipeline, from a Hub id or a local path.

pyannote.audio is an optional extra (`pip install .[pyannote]`): it does not import beside
the CPU torch of the default install (its torchaudio/torchcodec wheels are CUDA builds), so
every import of it happens here, lazily, and a missing or broken install becomes a
`ModelLoadError` that names the fix. `make test-pyannote` runs this backend for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from app.ml.compute import ModelLoadError, is_out_of_memory, out_of_memory_as_error
from app.ml.diarization.base import (
    Diarization,
    DiarizationError,
    DiarizationRequest,
    Diarizer,
    SpeakerTurn,
    speaker_label,
)
from app.ml.speech.audio import SAMPLE_RATE
from app.ml.types import Stage


def pyannote_model_dir(model: str, models_dir: Path) -> Path:
    """A local path as given, else where `ovozly models fetch` puts the Hub pipeline."""
    from app.ml.models.catalog import hub_model_dir

    local = Path(model).expanduser()
    if local.exists():
        return local
    directory = hub_model_dir(models_dir, model)
    if not directory.is_dir():
        raise ModelLoadError(
            f"pyannote pipeline {model!r} is not in MODELS_DIR ({directory} is missing). Workers "
            "never download: accept the model's conditions on the Hub, set HF_TOKEN and run "
            "`ovozly models fetch` once, or set DIARIZATION_MODEL to a local directory"
        )
    return directory


def load_pyannote_pipeline(
    model: str, *, token: str | None, device: str, models_dir: Path = Path(".ovozly/models")
) -> Any:
    try:
        import torch
        from pyannote.audio import Pipeline
    except Exception as error:
        raise ModelLoadError(
            "DIARIZATION_BACKEND=pyannote needs pyannote.audio with a matching torch/torchaudio "
            f"build (pip install '.[pyannote]' on a GPU image); importing it failed: {error}"
        ) from error
    source = str(pyannote_model_dir(model, models_dir))
    try:
        try:
            pipeline = Pipeline.from_pretrained(source, token=token)
        except TypeError:
            # pyannote.audio 3.x names the argument differently.
            pipeline = Pipeline.from_pretrained(source, use_auth_token=token)
    except Exception as error:
        raise ModelLoadError(
            f"cannot load pyannote pipeline {model!r} from {source}: {error}. "
            "`ovozly models verify` checks a fetched pipeline against its published hashes"
        ) from error
    if pipeline is None:
        raise ModelLoadError(
            f"pyannote pipeline {model!r} is gated or missing; set HF_TOKEN or a local path"
        )
    with out_of_memory_as_error(device, "loading the pyannote pipeline"):
        pipeline.to(torch.device(device))
    return pipeline


class PyannoteDiarizer(Diarizer):
    # Finds speech itself; the pipeline's regions are ignored.
    takes_speech_regions: ClassVar[bool] = False

    def __init__(self, pipeline: Any, device: str = "cpu") -> None:
        self.pipeline = pipeline
        self.device = device

    def diarize(self, request: DiarizationRequest) -> Diarization:
        import torch

        hints, progress = request.hints, request.progress
        waveform = torch.from_numpy(request.audio.mono()[None, :].copy())
        kwargs: dict[str, int] = {}
        if hints.num_speakers is not None:
            kwargs["num_speakers"] = hints.num_speakers
        else:
            if hints.min_speakers is not None:
                kwargs["min_speakers"] = hints.min_speakers
            if hints.max_speakers is not None:
                kwargs["max_speakers"] = hints.max_speakers

        def hook(
            step_name: str,
            step_artifact: Any,
            file: Any = None,
            total: int | None = None,
            completed: int | None = None,
        ) -> None:
            if total:
                progress(Stage.DIARIZING, float(completed or 0), float(total))

        with out_of_memory_as_error(self.device, "diarizing with pyannote"):
            try:
                output = self.pipeline(
                    {"waveform": waveform, "sample_rate": SAMPLE_RATE}, hook=hook, **kwargs
                )
            except (RuntimeError, ValueError) as error:
                if is_out_of_memory(error):
                    raise
                raise DiarizationError(f"pyannote diarization failed: {error}") from error
        # pyannote.audio 4 returns an object holding annotations; 3.x the annotation itself.
        annotation = getattr(output, "speaker_diarization", output)
        return annotation_to_diarization(annotation)


def annotation_to_diarization(annotation: Any) -> Diarization:
    """A pyannote.core Annotation -> turns with labels renumbered by first appearance."""
    labels: dict[str, str] = {}
    turns: list[SpeakerTurn] = []
    for segment, _track, label in annotation.itertracks(yield_label=True):
        name = labels.setdefault(str(label), speaker_label(len(labels)))
        turns.append(SpeakerTurn(name, float(segment.start), float(segment.end)))
    turns.sort(key=lambda turn: (turn.start_s, turn.end_s))
    return Diarization(turns=turns)
