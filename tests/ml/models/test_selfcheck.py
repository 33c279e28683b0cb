"""The worker's self-check on the real models: every configured model loaded and run on a
second of generated speech-like audio."""

from __future__ import annotations

import pytest

from app.ml.analysis.settings import AnalysisSettings
from app.ml.compute import MODELS
from app.ml.models.selfcheck import CHECK_SECONDS, run_self_check, speech_like_signal
from app.ml.settings import PipelineSettings
from app.ml.speech.vad import SileroVad


def test_the_generated_signal_is_heard_as_speech() -> None:
    signal = speech_like_signal()
    assert signal.shape == (int(16_000 * CHECK_SECONDS),) and signal.dtype.name == "float32"
    assert 0.4 < float(abs(signal).max()) <= 0.5
    regions = MODELS.get(("silero-vad",), SileroVad)(signal)
    assert sum(end - start for start, end in regions) > 0.3
    # Silence of the same length is not.
    assert MODELS.get(("silero-vad",), SileroVad)(signal * 0) == []


@pytest.mark.slow
def test_the_default_configuration_passes_with_timings_device_and_memory() -> None:
    report = run_self_check(PipelineSettings(_env_file=None), AnalysisSettings(_env_file=None))
    assert report.ok, report.table()
    assert report.device == "cpu"
    assert [check.role for check in report.checks] == [
        "vad",
        "speaker-embeddings",
        "speech-to-text",
        "speech-to-text",
        "language-id",
        "sentence-embeddings",
        "names-ru",
    ]
    for check in report.checks:
        assert check.device == "cpu" and check.load_s >= 0 and check.run_s > 0, check
        assert check.memory_mb is not None and check.memory_mb >= 0
    assert "models loaded and run on cpu" in report.summary()


def test_a_missing_model_or_device_fails_the_check(tmp_path: object) -> None:
    missing = run_self_check(
        PipelineSettings(_env_file=None, stt_model="large-v3", models_dir=tmp_path)
    )
    assert not missing.ok
    (stt,) = [check for check in missing.checks if check.role == "speech-to-text"]
    assert not stt.ok and stt.error is not None and "ovozly models fetch" in stt.error
    assert all(check.ok for check in missing.checks if check.role != "speech-to-text")

    import torch

    if not torch.cuda.is_available():
        no_gpu = run_self_check(PipelineSettings(_env_file=None, device="cuda"))
        assert not no_gpu.ok and no_gpu.checks == []
        assert no_gpu.error is not None and "DEVICE=cuda" in no_gpu.error


def test_hosted_services_are_listed_but_not_contacted() -> None:
    report = run_self_check(
        PipelineSettings(_env_file=None, stt_backend="openai", diarization_backend="pyannoteai"),
        AnalysisSettings(_env_file=None, analysis_backend="openai"),
    )
    hosted = {check.role: check for check in report.checks if check.source == "hosted"}
    assert set(hosted) == {"speech-to-text", "diarization", "analysis-llm"}
    assert all(check.ok and check.device == "remote" for check in hosted.values())
    assert report.ok


def test_the_catalogue_follows_the_language_routes(tmp_path: object) -> None:
    from app.ml.models.catalog import ModelSource, required_models

    default = required_models(PipelineSettings(_env_file=None))
    speech = [(spec.role, spec.languages, spec.source) for spec in default if spec.stt_route]
    # The bundled Whisper base transcribes Russian and also identifies each turn's language:
    # listed once; tiny.en takes English; Uzbek has no default model.
    assert speech == [
        ("speech-to-text", ("ru",), ModelSource.PACKAGE),
        ("speech-to-text", ("en",), ModelSource.PACKAGE),
    ]
    routed = required_models(
        PipelineSettings(
            _env_file=None,
            models_dir=tmp_path,
            stt_models=f"uz=onnx:{tmp_path}/org/uz-onnx,ru=aisha,en=faster-whisper:large-v3",
        )
    )
    by_language = {spec.languages: spec for spec in routed if spec.role == "speech-to-text"}
    assert by_language[("uz",)].repo_id == "org/uz-onnx"
    assert by_language[("ru",)].source is ModelSource.HOSTED
    assert by_language[("en",)].repo_id == "Systran/faster-whisper-large-v3"
    assert [spec.role for spec in routed].count("speech-language-id") == 1


@pytest.mark.slow
def test_a_concurrent_check_proves_the_same_models_the_pipeline_then_uses() -> None:
    """A worker's start-up check: the Whisper models load in threads while the rest load
    in this one; every model is still loaded and run, and the pipeline built after it
    gets the very models the check loaded."""
    from app.ml.speech.pipeline import SpeechPipeline
    from app.ml.stt import load_model

    settings = PipelineSettings(_env_file=None)
    sequential = run_self_check(settings)
    concurrent = run_self_check(settings, concurrent=True)
    assert concurrent.ok, concurrent.table()
    assert [(c.role, c.name, c.ok) for c in concurrent.checks] == [
        (c.role, c.name, c.ok) for c in sequential.checks
    ]
    stt = [c for c in concurrent.checks if c.role == "speech-to-text"]
    assert len(stt) == 2 and all("encoder and decoder run" in c.detail for c in stt)
    # Overlapping loads cannot be told apart: memory is measured for the whole check.
    assert all(c.memory_mb is None for c in concurrent.checks)
    assert concurrent.memory_mb is not None and concurrent.as_dict()["memoryMb"] is not None
    pipeline = SpeechPipeline(settings)
    for language, model in pipeline.models.items():
        spec = pipeline.routes.routes[language]
        assert model is load_model(spec, settings, "cpu", purpose=language)


def test_a_model_failing_in_a_thread_fails_the_concurrent_check(tmp_path: object) -> None:
    missing = run_self_check(
        PipelineSettings(_env_file=None, stt_model="large-v3", models_dir=tmp_path),
        concurrent=True,
    )
    assert not missing.ok
    (stt,) = [check for check in missing.checks if check.role == "speech-to-text"]
    assert not stt.ok and stt.error is not None and "ovozly models fetch" in stt.error
    assert all(check.ok for check in missing.checks if check.role != "speech-to-text")
    assert "speech-to-text (Systran/faster-whisper-large-v3)" in missing.summary()


def test_without_a_gpu_driver_the_device_is_resolved_without_importing_torch() -> None:
    import os
    import subprocess
    import sys

    from app.ml.compute import GPU_DRIVER_PATHS

    if sys.platform != "linux" or any(os.path.exists(path) for path in GPU_DRIVER_PATHS):
        pytest.skip("this machine has a GPU driver: torch must be asked")
    probe = (
        "import sys; from app.ml.compute import resolve_device; "
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["cpu", "False"]


def test_torch_is_imported_before_ctranslate2() -> None:
    """Each brings its own OpenMP runtime; CTranslate2's first made every call cost up to
    twice the CPU. The process's import order is what sys.modules keeps."""
    import subprocess
    import sys

    probe = (
        "import sys; from app.ml.stt import import_backend; import_backend('faster-whisper'); "
        "names = list(sys.modules); print(names.index('torch') < names.index('ctranslate2'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "True"
