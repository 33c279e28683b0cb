"""Every call in its own language, with the default (offline, no configuration) models:
Russian is transcribed in Russian, Uzbek turns are marked Uzbek with empty text and a
warning (never invented English), and a call that switches language gets each turn right."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.ml.language.report import ANALYSIS_PARTIAL, LANGUAGE_NOT_TRANSCRIBED
from app.ml.speech.pipeline import SpeechPipeline
from bench.phone_audio import (
    CODE_SWITCHED_ORDER,
    code_switched_call,
    language_accuracy,
)
from tests.factories import noise

pytestmark = pytest.mark.slow

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def test_a_russian_call_comes_back_in_russian(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(test_audio_dir / "pisets_test_sound_ru.wav")
    text = " ".join(segment.text for segment in transcript.segments).lower()
    # The words themselves ("нейронные/нейронной сети") vary with the CPU's arithmetic.
    assert "нейрон" in text and "сети" in text
    assert transcript.language == "ru"
    assert [share.language for share in transcript.languages] == ["ru"]
    assert all(segment.language == "ru" for segment in transcript.segments)
    assert transcript.warnings == []


def test_an_uzbek_call_is_marked_uzbek_with_empty_text_and_a_warning(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(test_audio_dir / "usc_uz_1126542829_1_33727_1.wav")
    assert transcript.segments
    assert all(segment.language == "uz" for segment in transcript.segments)
    # No invented speech: no model that cannot transcribe Uzbek ever saw these turns.
    assert all(segment.text == "" and segment.words == [] for segment in transcript.segments)
    assert transcript.language == "uz"
    assert [(share.language, share.share) for share in transcript.languages] == [("uz", 1.0)]
    codes = [warning.code for warning in transcript.warnings]
    assert codes == [LANGUAGE_NOT_TRANSCRIBED, ANALYSIS_PARTIAL]
    message = transcript.warnings[0].message
    assert message.startswith("Uzbek speech (100% of talk time) was not transcribed")
    assert "no Uzbek model is configured" in message and "docs/languages.md" in message


def test_a_code_switched_call_gets_each_turn_language_right(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    signal, parts = code_switched_call(test_audio_dir, CODE_SWITCHED_ORDER)
    path = tmp_path / "uz-ru-en.wav"
    soundfile.write(path, signal, 16000)
    transcript = pipeline(path)
    segments = [(s.start_s, s.end_s, s.language) for s in transcript.segments]
    assert language_accuracy(segments, parts) >= 0.95, transcript.segments
    for part in parts:
        inside = [
            s for s in transcript.segments if s.start_s < part.end_s and s.end_s > part.start_s
        ]
        assert inside, part
        text = " ".join(s.text for s in inside)
        if part.language == "uz":
            assert text.strip() == "", (part, text)
        elif part.language == "ru":
            assert CYRILLIC.search(text), (part, text)
        else:
            assert "americans" in text.lower(), (part, text)
    assert {share.language for share in transcript.languages} == {"uz", "ru", "en"}
    assert sum(share.share for share in transcript.languages) == pytest.approx(1.0, abs=1e-3)
    assert [w.code for w in transcript.warnings] == [LANGUAGE_NOT_TRANSCRIBED, ANALYSIS_PARTIAL]


def test_a_call_without_speech_has_no_segments_and_no_warnings(
    pipeline: SpeechPipeline, tmp_path: Path
) -> None:
    path = tmp_path / "silence.wav"
    soundfile.write(path, noise(4.0, level=1e-4, seed=3), 16000)
    transcript = pipeline(path)
    assert transcript.segments == []
    assert transcript.languages == []
    assert transcript.warnings == []
    assert transcript.language is None


def test_a_long_turn_is_identified_from_its_middle_ten_seconds(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    """A 24 s Russian monologue: the identifier hears at most MAX_EXCERPT_S of it, taken
    from the middle, and still calls it Russian."""
    from app.ml.language import identify as language_id
    from app.ml.speech.turns import SpeechTurn
    from tests.ml.stt.conftest import load_audio

    signal = load_audio(test_audio_dir / "vosk_server_mqtt_test_ru.wav")
    duration = signal.size / 16000
    turn = SpeechTurn(speaker="SPEAKER_00", regions=[(0.0, duration)])
    whisper = pipeline.identifier.whisper
    assert whisper is not None
    heard: list[int] = []
    original = whisper.language_probabilities

    def listening(audio: np.ndarray) -> dict[str, float]:
        heard.append(audio.size)
        return original(audio)

    identifier = language_id.TurnLanguageIdentifier(
        pipeline.identifier.languages, whisper, forced=None
    )
    whisper.language_probabilities = listening  # type: ignore[method-assign]
    try:
        (decision,) = identifier.identify(signal, [turn])
    finally:
        del whisper.language_probabilities
    assert decision.language == "ru"
    assert heard == [round(language_id.MAX_EXCERPT_S * 16000)]
    middle = language_id.excerpt(np.arange(30 * 16000, dtype=np.float32))
    assert middle[0] == 10 * 16000 and middle.size == 10 * 16000
    short = np.ones(16000, dtype=np.float32)
    assert language_id.excerpt(short) is short


def test_identification_calls_back_after_every_turn_it_hears(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    from app.ml.language.identify import MIN_TURN_S
    from app.ml.speech.turns import SpeechTurn
    from tests.ml.stt.conftest import load_audio

    signal = load_audio(test_audio_dir / "pisets_test_sound_ru.wav")
    turns = [
        SpeechTurn(speaker="SPEAKER_00", regions=[(0.0, 1.6)]),
        SpeechTurn(speaker="SPEAKER_01", regions=[(1.6, 1.6 + MIN_TURN_S / 2)]),
        SpeechTurn(speaker="SPEAKER_00", regions=[(3.2 - MIN_TURN_S - 0.1, 3.2)]),
    ]
    calls: list[None] = []
    decisions = pipeline.identifier.identify(signal, turns, after_turn=lambda: calls.append(None))
    assert len(decisions) == 3
    # The two turns long enough to hear, once when scored and once when decided.
    assert len(calls) == 4
