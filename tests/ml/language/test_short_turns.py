"""Turn language on short turns, on real shared speech: 1-4 s turns switching language on
every turn, a short English backchannel inside a Russian call, and an Uzbek turn between
Russian ones. The identifier is given the true turns (the diarizer's own errors are
measured by `bench.hard_calls`, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml.speech.pipeline import SpeechPipeline
from app.ml.speech.turns import SpeechTurn
from bench.hard_calls import clip_speech, short_turn_call

pytestmark = pytest.mark.slow

GAP_S = 0.4


def _call(
    pipeline: SpeechPipeline, audio_dir: Path, pieces: list[tuple[str, str, float, float]]
) -> tuple[np.ndarray, list[SpeechTurn]]:
    """(speaker, clip, offset_s, length_s) pieces of the clips' speech, GAP_S apart."""
    signal: list[np.ndarray] = []
    turns: list[SpeechTurn] = []
    cursor_s = 0.0
    for speaker, name, offset_s, length_s in pieces:
        speech = clip_speech(pipeline.vad, audio_dir / name)
        piece = speech[round(offset_s * 16000) : round((offset_s + length_s) * 16000)]
        turns.append(SpeechTurn(speaker, [(cursor_s, cursor_s + piece.size / 16000)]))
        signal += [piece, np.zeros(round(GAP_S * 16000), dtype=np.float32)]
        cursor_s += piece.size / 16000 + GAP_S
    return np.concatenate(signal), turns


def test_a_short_turn_call_gets_its_turns_languages_right(pipeline: SpeechPipeline) -> None:
    signal, parts = short_turn_call(pipeline.vad, seed=5)
    turns = [SpeechTurn(f"{p.language} {p.source}", [(p.start_s, p.end_s)]) for p in parts]
    decisions = pipeline.identifier.identify(signal, turns)
    talk = sum(turn.speech_s for turn in turns)
    right = sum(
        turn.speech_s
        for turn, part, decision in zip(turns, parts, decisions, strict=True)
        if decision.language == part.language
    )
    assert right / talk >= 0.95, [
        (part.language, round(turn.speech_s, 2), decision)
        for turn, part, decision in zip(turns, parts, decisions, strict=True)
    ]


BACKCHANNEL = [
    ("A", "pisets_test_sound_ru.wav", 0.0, 4.0),
    ("B", "pyannote_sample.wav", 0.0, 1.1),
    ("A", "pisets_test_sound_ru.wav", 4.0, 3.5),
]
"""'Hello? Hello?' (1.1 s) between Russian turns: Whisper's audio scores give it mostly
Korean and Chinese, which fold to Uzbek; its English text settles it."""
UZBEK_BETWEEN_RUSSIAN = [
    ("A", "golos_001ce26c07c20eaa0d666b824c6c6924.wav", 0.0, 3.0),
    ("B", "usc_uz_1131474547_2_29209_1.wav", 0.0, 2.0),
    ("A", "pisets_test_sound_ru.wav", 0.0, 3.0),
]


@pytest.mark.parametrize(
    ("pieces", "languages"),
    [(BACKCHANNEL, ["ru", "en", "ru"]), (UZBEK_BETWEEN_RUSSIAN, ["ru", "uz", "ru"])],
    ids=["english-backchannel-in-russian", "uzbek-turn-between-russian"],
)
def test_a_short_turn_in_another_language_is_identified(
    pipeline: SpeechPipeline,
    test_audio_dir: Path,
    pieces: list[tuple[str, str, float, float]],
    languages: list[str],
) -> None:
    signal, turns = _call(pipeline, test_audio_dir, pieces)
    decisions = pipeline.identifier.identify(signal, turns)
    assert [d.language for d in decisions] == languages, decisions
