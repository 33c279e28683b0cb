"""What each language's model transcribes: the wider speech regions around its turns, cut
between turns of different languages, so no word is clipped at a turn edge."""

from __future__ import annotations

from app.ml.speech.transcription import language_regions
from app.ml.speech.turns import SpeechTurn


def _turn(speaker: str, language: str, *regions: tuple[float, float]) -> SpeechTurn:
    return SpeechTurn(speaker, list(regions), language=language)


def test_a_wide_region_goes_whole_to_the_one_language_inside_it() -> None:
    turns = [_turn("A", "en", (1.0, 2.0)), _turn("B", "en", (2.2, 4.0))]
    # The wide region reaches past both turn edges: the clipped word edges come back.
    assert language_regions([(0.8, 4.3)], turns) == {"en": [(0.8, 4.3)]}


def test_a_wide_region_holding_two_languages_is_cut_between_their_turns() -> None:
    turns = [
        _turn("A", "en", (1.0, 3.0)),
        _turn("A", "ru", (3.6, 5.0)),
        _turn("B", "ru", (5.2, 6.0)),
    ]
    assert language_regions([(0.9, 6.2)], turns) == {
        "en": [(0.9, 3.3)],
        "ru": [(3.3, 6.2)],
    }


def test_speech_outside_every_turn_goes_to_the_nearest_and_turn_speech_is_kept() -> None:
    turns = [_turn("A", "en", (1.0, 2.0)), _turn("B", "ru", (10.0, 11.0))]
    regions = language_regions([(0.9, 2.1), (8.0, 9.0)], turns)
    # (8, 9) holds no turn: the Russian turn is nearer. The Russian turn's own speech,
    # missing from the wide regions, is transcribed all the same.
    assert regions == {"en": [(0.9, 2.1)], "ru": [(8.0, 9.0), (10.0, 11.0)]}
    assert language_regions([(0.0, 5.0)], []) == {}
