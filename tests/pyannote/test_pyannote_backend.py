"""The `pyannote` diarization backend running pyannote.audio's real SpeakerDiarization
pipeline class, on randomly initialised segmentation and embedding checkpoints this test
builds and saves itself (no download). Runs in `make test-pyannote`'s own venv; skips in
the main venv, where pyannote.audio cannot import beside the CPU torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    import torch
    from pyannote.audio import Model
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet
    from pyannote.audio.pipelines import SpeakerDiarization
except Exception as error:  # ImportError, or OSError from CUDA-only torchaudio wheels
    pytest.skip(
        f"pyannote.audio is not importable here ({type(error).__name__}: {error}); "
        "run `make test-pyannote`",
        allow_module_level=True,
    )

from app.ml.diarization.pyannote_backend import PyannoteDiarizer, load_pyannote_pipeline
from app.ml.speech.audio import decode_audio
from app.ml.types import SpeakerHints, Stage


def save_checkpoint(model: Any, path: Path) -> Path:
    """A Lightning-style checkpoint with pyannote's metadata, as Model.from_pretrained reads."""
    checkpoint: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": "2.6.0",
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pyannote")
    segmentation = PyanNet(sample_rate=16_000, num_channels=1)
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=5.0,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.setup()
    embedding = WeSpeakerResNet34(sample_rate=16_000, num_channels=1)
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    # A random but well-formed PLDA (x-vector transform + PLDA model), as VBx clustering
    # loads it from a checkpoint folder.
    rng = np.random.default_rng(0)
    plda_dir = folder / "plda"
    plda_dir.mkdir()
    lda, _ = np.linalg.qr(rng.standard_normal((256, 128)))
    np.savez(
        plda_dir / "xvec_transform.npz",
        mean1=rng.standard_normal(256) * 0.01,
        mean2=np.zeros(128),
        lda=lda,
    )
    tr, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    np.savez(plda_dir / "plda.npz", mu=np.zeros(128), tr=tr, psi=rng.uniform(0.5, 2.0, 128))
    return (
        save_checkpoint(segmentation, folder / "segmentation.ckpt"),
        save_checkpoint(embedding, folder / "embedding.ckpt"),
        plda_dir,
    )


def build_pipeline(checkpoints: tuple[Path, Path, Path]) -> Any:
    segmentation, embedding, plda = checkpoints
    # Loading back proves the checkpoints are real pyannote checkpoints, not in-memory objects.
    assert Model.from_pretrained(str(segmentation)) is not None
    pipeline = SpeakerDiarization(
        segmentation=str(segmentation),
        embedding=str(embedding),
        plda=str(plda),
    )
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
        }
    )
    return pipeline


# Random weights give degenerate statistics (empty clusters) inside pyannote's clustering,
# which numpy reports as RuntimeWarnings; the project turns warnings into errors.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_backend_runs_the_real_pipeline(
    checkpoints: tuple[Path, Path, Path], test_audio_dir: Path
) -> None:
    diarizer = PyannoteDiarizer(build_pipeline(checkpoints), "cpu")
    audio = decode_audio(test_audio_dir / "pyannote_sample.wav")
    seen: list[tuple[Stage, float, float]] = []
    result = diarizer(
        audio,
        hints=SpeakerHints(num_speakers=2),
        progress=lambda stage, d, t: seen.append((stage, d, t)),
    )
    # Random weights say nothing about who speaks; the contract is what is checked: labels
    # renumbered, turns inside the call, at most the forced count, progress reported.
    assert len(result.speakers) <= 2
    assert all(label.startswith("SPEAKER_") for label in result.speakers)
    for turn in result.turns:
        assert 0.0 <= turn.start_s <= turn.end_s <= audio.duration_s + 0.1
    assert seen, "the pipeline's hook was not forwarded"
    assert {stage for stage, _, _ in seen} == {Stage.DIARIZING}


def test_missing_local_model_is_a_load_error(tmp_path: Path) -> None:
    from app.ml.compute import ModelLoadError

    with pytest.raises(ModelLoadError):
        load_pyannote_pipeline(str(tmp_path / "nothing-here"), token=None, device="cpu")
